"""Every notebook in notebooks/ runs top to bottom, headlessly, in time, and leaks no secret.

Each notebook is copied into a throwaway repository tree (a `pyproject.toml` at its root, so
the `.env` search stops there, and nothing beside it: the recordings are the kit's shipped
samples) and executed with nbclient on this venv's `python3` kernel, in four situations:

* no `.env` and no LIVEKIT_*/ASSEMBLYAI_* variables: the embedded default. Notebooks 01 and 03
  start the kit's LiveKit development server (`stt_agent.DevServer`) and run every room cell on
  it with media; the others run in local mode;
* a planted `.env` with random keys and unreachable servers: every notebook must still finish,
  tell the learner what is wrong, and never show a secret (outputs, errors, widget state);
* a planted `.env` pointing at the LiveKit stand-in (tests/standins), which the real
  `livekit.rtc` client joins with media: notebook 01's two participants hear each other and
  notebook 03's room of speakers is transcribed, each under their name (`STANDIN_PROMISES`);
* the same stand-in, but the `.env` holds a key pair it does not know: the notebooks must say
  that the credentials were refused.

The committed notebooks themselves must carry no outputs and no execution counts. In the first
situation each notebook must also show what its prose promises (`PROMISES` below), in its
saved outputs, so that it reads right on GitHub or a course site. That first run happens once
per session (`no_settings_runs`, tests/notebook_runs.py): tests/test_site.py renders the same
executed copies.
New notebooks are picked up automatically: everything is parametrised over notebooks/*.ipynb.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from secrets import token_hex, token_urlsafe

import nbformat
import pytest

from benchmarks.scoring import normalise
from tests.notebook_runs import (
    BUDGET_S,
    NOTEBOOK_DIR,
    NoSettingsRuns,
    execute,
    kernel_env,
    make_sandbox,
)
from tests.standins.livekit_server import LiveKitStandIn

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# What a notebook says when a configured server is down; any one will do.
SAYS_WHAT_IS_WRONG = (
    "cannot reach",
    "can't reach",
    "could not reach",
    "couldn't reach",
    "unreachable",
    "not reachable",
    "no answer from",
)
# What a notebook says when a server refuses the configured key pair.
SAYS_KEYS_ARE_WRONG = ("refused", "rejected", "unauthorized", "unauthenticated", "http 401")
# A whole signed JWT (header.payload.signature): a token must never be shown, only decoded.
JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{20,}")
# ...except the one a room page must carry (`show_room`): room-scoped, short-lived, no admin.
ROOM_PAGE_TOKEN_TTL_S = 15 * 60
ADMIN_GRANTS = ("roomCreate", "roomList", "roomAdmin", "roomRecord", "ingressAdmin", "agent")

# Notebooks that run LiveKit rooms with media even with no settings (on the kit's own server):
# WebRTC, so they run only inside the tests' network namespace (tests/netns.py).
ROOM_NOTEBOOKS = {
    p.stem for p in NOTEBOOKS if any(w in p.read_text() for w in ("DevServer(", "open_workshop("))
}
notebook_params = pytest.mark.parametrize(
    "notebook",
    [
        pytest.param(p, marks=pytest.mark.room_media) if p.stem in ROOM_NOTEBOOKS else p
        for p in NOTEBOOKS
    ],
    ids=[p.stem for p in NOTEBOOKS],
)
# The notebooks that talk to a LiveKit server: only these gain anything from being run
# against the LiveKit stand-in (the others would repeat the no-settings run at full cost).
LIVEKIT_NOTEBOOKS = [
    p
    for p in NOTEBOOKS
    if any(word in p.read_text() for word in ("LiveKitAPI", "start_agent", "check_settings"))
]
livekit_notebook_params = pytest.mark.parametrize(
    "notebook", LIVEKIT_NOTEBOOKS, ids=[p.stem for p in LIVEKIT_NOTEBOOKS]
)
# Executing notebooks takes minutes: `-m "not notebooks"` leaves these out (the static check of
# the committed files stays in, it takes milliseconds).
executes = pytest.mark.notebooks


# --- the sandbox ---------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """<tmp>/repo: pyproject.toml, .gitignore and a copy of notebooks/ (tests/notebook_runs.py)."""
    return make_sandbox(tmp_path)


def _plant_env(root: Path, values: dict[str, str]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    (root / ".env").write_text(text)
    (root / ".env").chmod(0o600)


def _record(request: pytest.FixtureRequest, scenario: str, name: str, seconds: float) -> None:
    request.node.user_properties.append(("duration_s", round(seconds, 1)))
    cache = getattr(request.config, "cache", None)  # absent under `-p no:cacheprovider`
    if cache is not None:
        cache.set(f"notebooks/durations/{scenario}/{name}", round(seconds, 1))
    print(f"{name} [{scenario}]: {seconds:.1f} s")


# --- what is in an executed notebook ---------------------------------------------------------


def _output_texts(nb: nbformat.NotebookNode) -> Iterator[tuple[str, str]]:
    """(where, text) for every output, error output and widget model in the notebook."""
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            where = f"cell {i} ({output.get('output_type')})"
            if output.get("output_type") == "stream":
                yield where, output.get("text", "")
            elif output.get("output_type") == "error":
                yield where, "\n".join([output.get("ename", ""), output.get("evalue", "")])
                yield where, "\n".join(output.get("traceback", []))
            for mime, data in output.get("data", {}).items():
                yield f"{where} {mime}", data if isinstance(data, str) else json.dumps(data)
    state = nb.metadata.get("widgets", {})
    if state:
        yield "widget state", json.dumps(state)


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    try:
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return {}


def _room_page_token(token: str) -> bool:
    """A token a room page may carry: one room, join only, at most 15 minutes."""
    claims = _claims(token)
    grants = claims.get("video") or {}
    lifetime = claims.get("exp", 0) - claims.get("nbf", 0)
    return (
        bool(grants.get("room"))
        and grants.get("roomJoin") is True
        and not any(grants.get(g) for g in ADMIN_GRANTS)
        and 0 < lifetime <= ROOM_PAGE_TOKEN_TTL_S
    )


def _leaks(nb: nbformat.NotebookNode, secrets: dict[str, str]) -> list[str]:
    """Where a secret or a signed token shows up; names only, never the values. A room page's
    own token (room-scoped, join only, 15 minutes at most) is the one token allowed."""
    found = []
    whole = nbformat.writes(nb)
    for name, value in secrets.items():
        if value in whole:
            places = [where for where, text in _output_texts(nb) if value in text]
            found.append(f"{name} in {', '.join(places) or 'the notebook JSON'}")
    for where, text in _output_texts(nb):
        if any(not _room_page_token(m.group()) for m in JWT.finditer(text)):
            found.append(f"a signed token in {where}")
    return found


def _shown_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(text for _, text in _output_texts(nb)).lower()


# --- what each notebook's prose promises, checked in its saved outputs ------------------------


def _cell(nb: nbformat.NotebookNode, needle: str) -> tuple[int, str]:
    """(index, everything its outputs show as text) of the one code cell containing `needle`."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source]
    assert len(found) == 1, f"expected one cell with {needle!r}, found {len(found)}"
    texts = []
    for output in nb.cells[found[0]].get("outputs", []):
        texts.append(output.get("text", ""))
        data = output.get("data", {})
        texts += [data.get("text/plain", ""), re.sub(r"<[^>]+>", " ", data.get("text/html", ""))]
    return found[0], "\n".join(texts)


def _promises_01(nb: nbformat.NotebookNode) -> None:
    _, vad = _cell(nb, "segments.append((start, end))")
    assert vad.count("END_OF_SPEECH") >= 3, vad  # the speech the VAD found in the recording
    # no .env: the kit's LiveKit server runs, and every room cell with it
    _, server = _cell(nb, "probe = await probe_livekit(")
    assert "the kit's livekit development server runs" in server.lower(), server
    assert "Found a LiveKit server" in server, server
    _, created = _cell(nb, "lk.room.create_room(request)")
    assert "created room stt-demo-" in created, created
    _standin_promises_01(nb)  # alice and bob: bob hears alice
    _, ended = _cell(nb, "await kit_server.stop()")
    assert "has stopped" in ended, ended


def _promises_03(nb: nbformat.NotebookNode) -> None:
    _, working = _cell(nb, "work_done = []")
    arrived = re.search(r"meanwhile (\d+) utterances arrived", working)
    assert arrived and int(arrived.group(1)) > 0, f"nothing arrived while working: {working}"
    _, transcript = _cell(nb, "view = stt_agent.TranscriptView(handle.feed)")
    said = normalise(transcript)
    # (not "ask not": through Opus in room mode tiny.en often hears "as not")
    assert "what your country can do for you" in said and "do for your country" in said, transcript
    _, status = _cell(nb, "stt_agent.StatusView(handle)")
    assert "stopped" in status, status  # the saved status is the final one
    # no .env: room mode on the kit's LiveKit server; kennedy and the workshop's two speakers
    # are each transcribed under their own name
    _, started = _cell(nb, "kennedy = stt_agent.VirtualSpeaker(")
    assert "Registered with ws://127.0.0.1:" in started, started
    assert "kennedy joined the room" in started, started
    _, room = _cell(nb, "stt_agent.show_room(room)")
    kennedy = " ".join(re.findall(r"^kennedy: (.+)$", room, re.M))
    assert "what your country can do for you" in normalise(kennedy), room
    _standin_promises_03(nb)


def _promises_04(nb: nbformat.NotebookNode) -> None:
    waited, fired = _cell(nb, "def alerted()")
    removed, _ = _cell(nb, 'remove_turn_handler("keyword_alert")')
    assert waited < removed
    assert re.search(r"alert \[[^\]]*'country'", fired), f"the alert never fired: {fired}"
    errors = re.search(r"errors so far: (\d+)", fired)
    assert errors and int(errors.group(1)) > 0, fired
    _, transcript = _cell(nb, "view = stt_agent.TranscriptView(handle.feed)")
    assert "dashwood" in normalise(transcript) or "ill disposed" in normalise(transcript)


def _promises_05(nb: nbformat.NotebookNode) -> None:
    _, compared = _cell(nb, "assemblyai_format_turns=False")
    formatted = re.findall(r"format_turns=True : (.+)", compared)
    raw = re.findall(r"format_turns=False: (.+)", compared)
    assert formatted and raw, compared
    assert all(t[0].isupper() and t.rstrip()[-1] in ".?!" for t in formatted), formatted
    assert all(re.fullmatch(r"[a-z0-9' -]+", t.strip()) for t in raw), raw
    _, turns = _cell(nb, "for max_silence, turns in results.items():")
    texts = re.findall(r"\d+\.\d+-\s*\d+\.\d+ s  (.+)", turns)
    assert texts and all(t[0].isupper() for t in texts), turns
    # The speech models come from the installed plugin, and the one used is marked.
    _, models = _cell(nb, "for model in SPEECH_MODELS:")
    assert re.search(
        r"^universal-streaming-english +Universal-Streaming  <- used above$", models, re.M
    ), models
    assert "Universal-3 Pro" in models and "balanced" in models, models


def _standin_promises_01(nb: nbformat.NotebookNode) -> None:
    _, heard = _cell(nb, "await asyncio.wait_for(publish_and_listen(), 40)")
    received = re.search(r"bob received (\d+\.\d) s of audio", heard)
    assert received and float(received.group(1)) >= 8.0, heard  # most of the 11 s recording


def _standin_promises_03(nb: nbformat.NotebookNode) -> None:
    _, said = _cell(nb, "ATTENDEES = {")
    ada = re.search(r"^ada: (.+)$", said, re.M)
    grace = re.search(r"^grace: (.+)$", said, re.M)
    assert ada and "what your country can do for you" in normalise(ada.group(1)), said
    assert grace and "narrative would be tedious" in normalise(grace.group(1)), said


STANDIN_PROMISES = {
    "01_livekit_constructs": _standin_promises_01,
    "03_transcriber_agent": _standin_promises_03,
}


PROMISES = {
    "01_livekit_constructs": _promises_01,
    "03_transcriber_agent": _promises_03,
    "04_turn_handlers": _promises_04,
    "05_assemblyai_turns": _promises_05,
}


# --- notebook 06 (the workshop, issue #20): kept apart from the checks above ------------------


def _promises_06(nb: nbformat.NotebookNode) -> None:
    _, opened = _cell(nb, "workshop = await stt_agent.open_workshop(")
    assert re.search(r"http://127\.0\.0\.1:\d+/[\w-]+/", opened), opened  # the join link
    _, said = _cell(nb, "ATTENDEES = {")
    ada = re.search(r"^ada: (.+)$", said, re.M)
    grace = re.search(r"^grace: (.+)$", said, re.M)
    assert ada and "what your country can do for you" in normalise(ada.group(1)), said
    assert grace and "narrative would be tedious" in normalise(grace.group(1)), said
    _, closed = _cell(nb, "await workshop.close()")
    assert "no longer answers" in closed, closed


PROMISES["06_workshop"] = _promises_06

# --- the tests -------------------------------------------------------------------------------


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@notebook_params
def test_committed_without_outputs(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    dirty = [
        f"cell {i}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{notebook.name} is committed with outputs or execution counts in {', '.join(dirty)}: "
        "run `jupyter nbconvert --clear-output --inplace` on it"
    )
    assert "widgets" not in nb.metadata, f"{notebook.name} is committed with widget state"


@executes
@notebook_params
def test_runs_without_settings(
    notebook: Path, no_settings_runs: NoSettingsRuns, request: pytest.FixtureRequest
) -> None:
    """The embedded default: no .env, no variables, local mode, under the time budget. (The
    session's one run of it, which the course site renders too.)"""
    run = no_settings_runs(notebook)
    nb, seconds, error = run.nb, run.seconds, run.error
    _record(request, "no-env", notebook.stem, seconds)
    if error:
        pytest.fail(f"{notebook.name} failed without a .env:\n{error}", pytrace=False)
    assert seconds <= BUDGET_S, f"{notebook.name} took {seconds:.0f} s (budget {BUDGET_S} s)"
    assert not _leaks(nb, {}), _leaks(nb, {})
    if notebook.stem in PROMISES:
        PROMISES[notebook.stem](nb)


@executes
@notebook_params
def test_runs_with_unreachable_servers_and_leaks_nothing(
    notebook: Path, sandbox: Path, request: pytest.FixtureRequest
) -> None:
    """Fake keys, servers that refuse connections: finish, say so, show no secret."""
    secrets = {
        "LIVEKIT_API_SECRET": token_urlsafe(32),
        "ASSEMBLYAI_API_KEY": token_hex(16),
    }
    env = {
        "LIVEKIT_URL": "ws://127.0.0.1:9",
        "LIVEKIT_API_KEY": "API" + token_hex(6),
        **secrets,
        "ASSEMBLYAI_BASE_URL": "ws://127.0.0.1:9",
    }
    nb = _run_with_env(notebook, sandbox, request, "unreachable", env, secrets)
    shown = _shown_text(nb)
    assert any(phrase in shown for phrase in SAYS_WHAT_IS_WRONG), (
        f"{notebook.name} never tells the learner that the configured servers cannot be "
        f"reached (looked for: {', '.join(SAYS_WHAT_IS_WRONG)})"
    )


def _run_with_env(
    notebook: Path,
    sandbox: Path,
    request: pytest.FixtureRequest,
    label: str,
    env: dict[str, str],
    secrets: dict[str, str],
) -> nbformat.NotebookNode:
    """Plant `env` as the sandbox's .env, execute the notebook, and check what every planted
    run must hold: no secret shown (checked first: a failed run must not leak either), no
    error, within budget. Returns the executed notebook for further checks."""
    _plant_env(sandbox, env)
    run = execute(sandbox / "notebooks" / notebook.name, kernel_env())
    nb, seconds, error = run.nb, run.seconds, run.error
    _record(request, label, notebook.stem, seconds)
    leaks = _leaks(nb, secrets)
    assert not leaks, f"{notebook.name} shows secrets: {'; '.join(leaks)}"
    if error:
        pytest.fail(f"{notebook.name} failed ({label}):\n{error}", pytrace=False)
    assert seconds <= BUDGET_S, f"{notebook.name} took {seconds:.0f} s (budget {BUDGET_S} s)"
    return nb


def _livekit_env(standin: LiveKitStandIn, api_key: str, api_secret: str) -> dict[str, str]:
    return {
        "LIVEKIT_URL": standin.ws_url,
        "LIVEKIT_API_KEY": api_key,
        "LIVEKIT_API_SECRET": api_secret,
    }


@contextmanager
def _livekit_standin(api_key: str, api_secret: str) -> Iterator[LiveKitStandIn]:
    """The LiveKit stand-in on its own thread and loop (nbclient blocks this one)."""
    loop = asyncio.new_event_loop()
    standin = LiveKitStandIn(api_key=api_key, api_secret=api_secret)
    thread = threading.Thread(target=loop.run_forever, name="livekit-standin", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(standin.start(), loop).result(10)
    try:
        yield standin
    finally:
        asyncio.run_coroutine_threadsafe(standin.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@executes
@pytest.mark.room_media
@livekit_notebook_params
def test_runs_against_livekit_standin(
    notebook: Path, sandbox: Path, request: pytest.FixtureRequest
) -> None:
    """A LiveKit server with media (the stand-in): finish, no leaks, and the room demos show
    what their prose promises."""
    api_key, api_secret = "API" + token_hex(6), token_urlsafe(32)
    with _livekit_standin(api_key, api_secret) as standin:
        env = _livekit_env(standin, api_key, api_secret)
        nb = _run_with_env(
            notebook, sandbox, request, "stand-in", env, {"LIVEKIT_API_SECRET": api_secret}
        )
    if notebook.stem in STANDIN_PROMISES:
        STANDIN_PROMISES[notebook.stem](nb)
    # a configured server is used as it is: the kit's own is not started
    assert "the kit's livekit development server runs" not in _shown_text(nb)


@executes
@livekit_notebook_params
def test_runs_with_wrong_livekit_keys(
    notebook: Path, sandbox: Path, request: pytest.FixtureRequest
) -> None:
    """A reachable server that refuses the configured key pair: finish, no leaks, and a notebook
    that was refused says so."""
    wrong_key, wrong_secret = "API" + token_hex(6), token_urlsafe(32)
    with _livekit_standin("API" + token_hex(6), token_urlsafe(32)) as standin:
        env = _livekit_env(standin, wrong_key, wrong_secret)
        secrets = {"LIVEKIT_API_SECRET": wrong_secret}
        nb = _run_with_env(notebook, sandbox, request, "wrong-keys", env, secrets)
        refused = standin.auth_failures
    if not refused:
        return  # this notebook never asked the server for anything
    shown = _shown_text(nb)
    assert any(phrase in shown for phrase in SAYS_KEYS_ARE_WRONG), (
        f"{notebook.name} never tells the learner that the server refused the key pair "
        f"(looked for: {', '.join(SAYS_KEYS_ARE_WRONG)})"
    )
