"""The command line's honest endings and the worker commands' settings check, run as a learner
would run them (a subprocess, a clean environment).

No test measures time. Where a test interrupts a run (Ctrl-C, a reader that goes away), the run
is paced in real time so that it is still going when the interruption comes.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scoring import normalise
from stt_agent import samples
from stt_agent.cli import main
from stt_agent.config import ENV_VARS
from tests.cli import REPO, clean_env, run_cli
from tests.standins.livekit_server import LiveKitStandIn

SAMPLE_RATE = 16_000


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def _problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("stt-agent:")]


def _popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stt_agent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=clean_env(),
        # A shell without job control starts background commands with Ctrl-C ignored, and
        # Python then leaves it ignored; this child must see it as a terminal user's would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


# --- finding one's way ----------------------------------------------------------------------


def test_no_command_lists_the_commands_and_exits_2():
    result = run_cli()
    assert result.returncode == 2
    assert result.stdout == ""
    for command in ("dev", "start", "console", "connect", "transcribe", "check"):
        assert re.search(rf"^\s+{command}\s+\S", result.stderr, re.M), result.stderr
    assert "the following arguments are required" not in result.stderr


def test_transcribe_help_explains_a_null_latency():
    result = run_cli("transcribe", "--help")
    assert result.returncode == 0
    said = " ".join(result.stdout.split())  # argparse wraps the help text
    assert "latency_ms" in said and "null without --realtime" in said, result.stdout


# --- honest endings of `transcribe` --------------------------------------------------------


def test_silence_and_noise_say_no_speech_found(tmp_path):
    silence = _write_wav(tmp_path / "silence.wav", np.zeros(5 * SAMPLE_RATE))
    rng = np.random.default_rng(7)
    noise = _write_wav(tmp_path / "noise.wav", rng.normal(0, 3000, 5 * SAMPLE_RATE))
    result = run_cli("transcribe", str(silence), str(noise))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert _problem_lines(result.stderr) == [
        f"stt-agent: {silence}: no speech found",
        f"stt-agent: {noise}: no speech found",
    ]
    assert "Traceback" not in result.stderr


def test_truncated_file_prints_its_intact_part_then_where_it_broke(tmp_path):
    cut = tmp_path / "cut.wav"
    with wave.open(str(cut), "wb") as w:  # a WAV of the whole 11 s recording...
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.load("jfk").tobytes())
    cut.write_bytes(cut.read_bytes()[: 44 + 6 * 32_000])  # ...cut after 6 s: the header
    # still promises all 11 s
    result = run_cli("transcribe", "--json", str(cut))
    assert result.returncode == 2, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records, "the intact part (about 6 s) was not transcribed"
    assert "and so my fellow americans" in normalise(records[0]["text"])
    assert all(r["end"] <= 6.5 for r in records)
    problems = _problem_lines(result.stderr)
    assert len(problems) == 1, result.stderr
    assert str(cut) in problems[0] and "truncated" in problems[0]
    assert "Traceback" not in result.stderr


def test_an_engine_that_stalls_on_one_file_still_transcribes_the_others(
    tmp_path, monkeypatch, capsys
):
    """A stall belongs to one file's stream (the next file gets its own), so the batch goes
    on; in-process, with the stall injected, since a real one takes the 30 s stall window."""
    import stt_agent.local
    from stt_agent.errors import StalledError

    first, second = samples.path("jfk"), samples.path("austen_0880")
    real = stt_agent.local.transcribe

    async def stalls_on_the_first(source, **options):
        if str(getattr(source, "name", "")) == str(first):
            raise StalledError("the local speech engine stopped answering: no answer for 30 s")
        return await real(source, **options)

    monkeypatch.setattr(stt_agent.local, "transcribe", stalls_on_the_first)
    status = main(["transcribe", str(first), str(second)])
    out = capsys.readouterr()
    assert status == 1
    assert _problem_lines(out.err) == [
        f"stt-agent: {first}: the local speech engine stopped answering: no answer for 30 s"
    ]
    assert "young man" in normalise(out.out), out.out


def test_a_reader_that_goes_away_ends_the_run_quietly(jfk):
    """`... transcribe talk.wav | head -1`"""
    process = _popen("transcribe", "--realtime", str(jfk))
    assert process.stdout is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does after its line
    _, stderr = process.communicate(timeout=120)
    assert "]" in first
    assert process.returncode == 141, stderr
    assert _problem_lines(stderr) == []
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_ctrl_c_is_one_line_and_exit_130(jfk):
    process = _popen("transcribe", "--realtime", str(jfk))
    assert process.stdout is not None
    assert "]" in process.stdout.readline()  # transcribing by now
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert _problem_lines(stderr) == ["stt-agent: interrupted"]
    assert "Traceback" not in stderr


def test_ctrl_c_while_starting_up_is_one_line_too():
    """Before `main()` runs, `python -m stt_agent` spends seconds importing the package. A
    Ctrl-C in that window is simulated deterministically: argv as `python -m` sets it while
    it imports the package, then the signal right after the imports."""
    script = (
        "import signal, sys\n"
        "sys.argv, sys.orig_argv = ['-m'], [sys.executable, '-m', 'stt_agent', 'transcribe']\n"
        "import stt_agent\n"
        "signal.raise_signal(signal.SIGINT)\n"
        "print('not reached')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=clean_env()
    )
    assert result.returncode == 130, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == ["stt-agent: interrupted"]

    # Imported by anything else (a notebook, a script), Python's own Ctrl-C handling stays.
    check = "import signal, stt_agent; print(signal.getsignal(signal.SIGINT).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, env=clean_env()
    )
    assert result.stdout.strip() == "default_int_handler", result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_any_stdout_encoding_works(jfk, as_json):
    env = clean_env(PYTHONIOENCODING="ascii")
    args = ["transcribe", *(["--json"] if as_json else []), str(jfk)]
    result = subprocess.run(
        [sys.executable, "-m", "stt_agent", *args],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    text = result.stdout.decode("ascii")  # nothing but ASCII reached the terminal
    assert "ask not" in normalise(text)
    if not as_json:
        assert "[  0.00 ->" in text


# --- the worker commands check the settings first ------------------------------------------


@pytest.mark.parametrize(
    "command", [["dev"], ["start"], ["connect", "--room", "lesson"]], ids=lambda c: c[0]
)
def test_worker_commands_without_settings_say_what_is_missing(tmp_path, command):
    result = run_cli(*command, cwd=tmp_path)  # no .env there, no LIVEKIT_* in the environment
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"stt-agent: {command[0]}: needs a LiveKit server")
    for var in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        assert var in lines[0]
    assert "python -m stt_agent check" in lines[0]


def test_worker_command_with_a_placeholder_url_names_it(tmp_path):
    (tmp_path / ".env").write_text(
        "LIVEKIT_URL=wss://<project>.livekit.cloud\nLIVEKIT_API_KEY=APIabc123\n"
        "LIVEKIT_API_SECRET=a-secret-long-enough-to-be-real\n"
    )
    result = run_cli("dev", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stt-agent: dev: LIVEKIT_URL:") and "placeholder" in lines[0]
    assert "a-secret-long-enough-to-be-real" not in result.stderr


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("server", ["silent", "unresolvable"])
def test_worker_command_with_a_server_that_does_not_answer_fails_in_one_line(
    tmp_path, silent_server, server
):
    url = silent_server if server == "silent" else "wss://no-such-host.invalid"
    env = clean_env(
        LIVEKIT_URL=url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret-of-the-dev-server"
    )
    # LiveKit alone would retry for minutes; the hang guard below is far above the 15 s promised
    result = run_cli("start", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    host = url.split("://", 1)[1]
    assert lines[0].startswith("stt-agent: start: LiveKit server:") and host in lines[0]
    assert "secret-of-the-dev-server" not in result.stderr


async def _start_worker(lk: LiveKitStandIn, secret: str) -> asyncio.subprocess.Process:
    env = clean_env(LIVEKIT_URL=lk.ws_url, LIVEKIT_API_KEY=lk.api_key, LIVEKIT_API_SECRET=secret)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stt_agent",
        "start",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_worker_command_with_a_good_server_hands_over_to_livekit():
    async with LiveKitStandIn() as lk:
        worker = await _start_worker(lk, lk.api_secret)
        try:
            assert await lk.wait_for_worker(timeout=120)  # registered: the check let it through
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.communicate(), 120)


async def test_worker_command_with_a_wrong_secret_fails_before_livekit_starts():
    async with LiveKitStandIn() as lk:
        worker = await _start_worker(lk, "not-the-secret-of-this-server")
        _, stderr = await asyncio.wait_for(worker.communicate(), 120)
        assert worker.returncode == 1
        lines = stderr.decode().strip().splitlines()
        assert len(lines) == 1, stderr
        assert "refused the API key/secret" in lines[0]
        assert lk.workers == []  # LiveKit's worker never tried to register


def test_commands_that_need_no_server_run_without_settings(tmp_path):
    result = run_cli("download-files", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _problem_lines(result.stderr) == []


@pytest.mark.parametrize(
    "variable", ["LIVEKIT_URL", "ASSEMBLYAI_BASE_URL"], ids=["livekit", "assemblyai"]
)
@pytest.mark.parametrize(
    "url", ["ws://[::1", "ws://user:pw@127.0.0.1:1", "ws://host:99999", "http://[zz]:1/", "ws://"]
)
def test_check_answers_any_url_with_a_problem_line_never_a_traceback(variable, url):
    env = {
        "LIVEKIT_URL": "ws://127.0.0.1:9",
        "LIVEKIT_API_KEY": "APIxxxxxxxx",
        "LIVEKIT_API_SECRET": "s" * 32,
        "ASSEMBLYAI_API_KEY": "0" * 32,
        variable: url,
    }
    result = run_cli("check", env=clean_env(**env))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"✗ {variable}:" in result.stdout or f"{variable}:" in result.stdout, result.stdout


# --- `check` answers any string in any setting ---------------------------------------------

# Odd strings a setting may hold: empty, only spaces, non-ASCII, very long, control characters
# (NUL cannot be in an environment variable), and the characters URL and format parsers trip on.
ODD_VALUES = {
    "empty": "",
    "spaces": "   ",
    "unicode": "é日本語 ✓",
    "long": "x" * 5000,
    "control": "\x01\x1b[31m\x7f",
    "bracket": "[",
    "at": "@",
    "percent": "%",
}
# Settings that are free text: these odd values are usable there (an agent's name, words to
# boost), so `check` rightly has nothing to say. Control characters are refused everywhere.
FREE_TEXT = {"STT_AGENT_AGENT_NAME", "ASSEMBLYAI_KEYTERMS"}


def _accepted(variable: str, label: str) -> bool:
    if label == "empty":
        return True  # an empty variable is an unset one: the default applies
    if label == "spaces":
        # white space only is unset too, except for secrets, which are never trimmed
        return variable not in ("LIVEKIT_API_SECRET", "ASSEMBLYAI_API_KEY")
    return variable in FREE_TEXT and label != "control"


def _problem_blocks(stdout: str) -> dict[str, str]:
    """variable -> the line after its `✗ VARIABLE:` line in the Problems section (its fix)."""
    lines = stdout.splitlines()
    start = lines.index("Problems:") + 1 if "Problems:" in lines else len(lines)
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return {
        lines[i].split("✗ ", 1)[1].split(":", 1)[0]: lines[i + 1] if i + 1 < end else ""
        for i in range(start, end)
        if lines[i].startswith("  ✗ ")
    }


@pytest.mark.parametrize("label", list(ODD_VALUES))
@pytest.mark.parametrize("variable", list(ENV_VARS))
def test_check_answers_any_string_in_any_setting(variable, label, tmp_path, monkeypatch, capsys):
    """In-process (144 cases would take minutes as subprocesses): `main(["check"])` must
    return, never raise; a value it cannot use is a problem line with its fix and exit 1."""
    (tmp_path / ".git").mkdir()  # no .env discovery beyond this folder
    monkeypatch.chdir(tmp_path)
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    # Whatever is accepted, nothing may be probed beyond this machine.
    monkeypatch.setenv("ASSEMBLYAI_BASE_URL", "ws://127.0.0.1:9")
    monkeypatch.setenv(variable, ODD_VALUES[label])

    status = main(["check"])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    if _accepted(variable, label):
        assert status == 0, out.out
        assert "No problems found in the settings." in out.out
    else:
        assert status == 1, out.out
        problems = _problem_blocks(out.out)
        assert variable in problems, out.out
        assert all(fix.startswith("      fix: ") for fix in problems.values()), out.out


def test_check_answers_odd_strings_everywhere_at_once_in_one_process_run(tmp_path):
    env = clean_env(**{var: "[" for var in ENV_VARS})
    result = run_cli("check", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    problems = _problem_blocks(result.stdout)
    # Whether languages fit depends on the speech model, and the model is wrong first.
    assert set(problems) == set(ENV_VARS) - FREE_TEXT - {"ASSEMBLYAI_LANGUAGES"}, result.stdout
    assert all(fix.startswith("      fix: ") for fix in problems.values())


def test_check_answers_a_settings_file_that_is_not_text(tmp_path):
    env_file = tmp_path / "binary.env"
    env_file.write_bytes(b"LIVEKIT_URL=\xff\xfe\x80\n")
    result = run_cli("check", "--env-file", str(env_file), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stt-agent: {env_file}: cannot be read")
