"""Settings: where values come from, which mode they select, what is wrong, and that secrets
never show themselves (repr, str, f-strings, tables, problems, logs, pickles, the `check` CLI).
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import subprocess
import sys
import types
from pathlib import Path

import pytest

from stt_agent.config import ENV_VARS, Secret, Settings, load_settings
from stt_agent.envfile import find_env_file
from tests.cli import run_cli

LK_TRIO = {
    "LIVEKIT_URL": "ws://localhost:7880",
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret-for-the-dev-server",
}
AAI_KEY = {"ASSEMBLYAI_API_KEY": "0123456789abcdef0123456789abcdef"}


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def settings_from(environ: dict[str, str], tmp_path: Path) -> Settings:
    """Settings from `environ` alone: an empty .env, no Colab."""
    return load_settings(env_file=write_env(tmp_path / "empty.env", {}), environ=environ)


@pytest.fixture
def fake_colab(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Pretend to run in Colab: `google.colab.userdata.get` answers from the returned dict."""
    stored: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in stored:
            # what Colab does for a secret that is missing or not granted to the notebook
            raise KeyError(f"Secret {name} does not exist.")
        return stored[name]

    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=get)  # type: ignore[attr-defined]
    google = sys.modules.get("google")
    if google is None:
        google = types.ModuleType("google")
        google.__path__ = []  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setattr(google, "colab", colab, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    return stored


# --- precedence ---------------------------------------------------------------------------


def test_defaults_when_nothing_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.env_file is None
    assert s == Settings()
    assert dict(s.sources) == {}
    assert {source for _, _, source in s.as_table()} == {"default"}
    assert [var for var, _, _ in s.as_table()] == list(ENV_VARS)


def test_precedence_defaults_dotenv_colab_environment(
    tmp_path: Path, fake_colab: dict[str, str]
) -> None:
    env_file = write_env(
        tmp_path / ".env",
        {
            "ASSEMBLYAI_SPEECH_MODEL": "from-dotenv",
            "STT_AGENT_LOCAL_MODEL": "from-dotenv",
            "STT_AGENT_AGENT_NAME": "from-dotenv",
        },
    )
    fake_colab.update(STT_AGENT_LOCAL_MODEL="from-colab", STT_AGENT_AGENT_NAME="from-colab")
    s = load_settings(env_file=env_file, environ={"STT_AGENT_AGENT_NAME": "from-environment"})

    assert s.engine_choice == "auto"  # nobody set it: the default
    assert s.assemblyai_speech_model == "from-dotenv"  # .env beats the default
    assert s.local_model == "from-colab"  # Colab beats .env
    assert s.agent_name == "from-environment"  # the environment beats everything
    assert s.sources["ASSEMBLYAI_SPEECH_MODEL"] == ".env"
    assert s.sources["STT_AGENT_LOCAL_MODEL"] == "Colab secrets"
    assert s.sources["STT_AGENT_AGENT_NAME"] == "environment"
    table = {var: (shown, source) for var, shown, source in s.as_table()}
    assert table["STT_AGENT_ENGINE"] == ("auto", "default")
    assert table["STT_AGENT_LOCAL_MODEL"] == ("from-colab", "Colab secrets")


def test_colab_secrets_are_masked_and_missing_ones_skipped(
    tmp_path: Path, fake_colab: dict[str, str]
) -> None:
    key = secrets.token_hex(16)
    fake_colab["ASSEMBLYAI_API_KEY"] = key  # every other name raises in userdata.get
    s = settings_from({}, tmp_path)
    assert s.assemblyai_api_key.reveal() == key
    assert s.sources == {"ASSEMBLYAI_API_KEY": "Colab secrets"}
    assert key not in repr(s)
    assert s.engine == "assemblyai"


def test_colab_is_not_consulted_outside_colab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # google.colab is importable (as when the package is pip-installed on a laptop) but the
    # notebook does not run in Colab, so nothing imported it: it must be left alone.
    package = tmp_path / "site" / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import types\nuserdata = types.SimpleNamespace(get=lambda name: 'from-colab')\n"
    )
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    s = settings_from({}, tmp_path)
    assert dict(s.sources) == {}
    assert s.local_model == "tiny.en"
    assert "google.colab" not in sys.modules


def test_empty_values_do_not_override(tmp_path: Path) -> None:
    env_file = write_env(
        tmp_path / "a.env", {"STT_AGENT_LOCAL_MODEL": "base.en", "LIVEKIT_URL": ""}
    )
    s = load_settings(env_file=env_file, environ={"STT_AGENT_LOCAL_MODEL": ""})
    assert s.local_model == "base.en"
    assert s.livekit_url == ""
    assert "LIVEKIT_URL" not in s.sources


def test_values_are_converted(tmp_path: Path) -> None:
    s = settings_from(
        {
            "ASSEMBLYAI_FORMAT_TURNS": "false",
            "ASSEMBLYAI_MIN_TURN_SILENCE_MS": " 400 ",
            "ASSEMBLYAI_MAX_TURN_SILENCE_MS": "1280",
            "ASSEMBLYAI_KEYTERMS": "LiveKit, AssemblyAI,, Jupyter ",
        },
        tmp_path,
    )
    assert s.assemblyai_format_turns is False
    assert s.assemblyai_min_turn_silence_ms == 400
    assert s.assemblyai_max_turn_silence_ms == 1280
    assert s.assemblyai_keyterms == ("LiveKit", "AssemblyAI", "Jupyter")


# --- .env discovery -----------------------------------------------------------------------


@pytest.mark.parametrize("marker", [".git", "pyproject.toml"])
def test_env_discovery_stops_at_the_repo_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    outside = tmp_path / "outside"
    repo = outside / "repo"
    deep = repo / "notebooks" / "chapter"
    deep.mkdir(parents=True)
    if marker == ".git":
        (repo / ".git").mkdir()
    else:
        (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    write_env(outside / ".env", {"STT_AGENT_AGENT_NAME": "outside"})
    monkeypatch.chdir(deep)

    # A .env beyond the repo root belongs to something else and is never read.
    assert find_env_file() is None
    assert load_settings(environ={}).agent_name == ""

    # The repo's own .env is found from a sub-folder, like a notebook in notebooks/ would.
    repo_env = write_env(repo / ".env", {"STT_AGENT_AGENT_NAME": "repo"})
    assert find_env_file() == repo_env.resolve()
    s = load_settings(environ={})
    assert s.agent_name == "repo"
    assert s.env_file == repo_env.resolve()

    # The nearest one wins.
    near = write_env(deep.parent / ".env", {"STT_AGENT_AGENT_NAME": "near"})
    assert find_env_file() == near.resolve()
    assert load_settings(environ={}).agent_name == "near"
    assert find_env_file(repo) == repo_env.resolve()


def test_named_env_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.env"
    with pytest.raises(FileNotFoundError, match=r"no-such\.env"):
        load_settings(env_file=missing, environ={})


def test_named_env_file_is_used_instead_of_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    write_env(tmp_path / ".env", {"STT_AGENT_AGENT_NAME": "discovered"})
    other = write_env(tmp_path / "other.env", {"STT_AGENT_AGENT_NAME": "named"})
    monkeypatch.chdir(tmp_path)
    s = load_settings(env_file=other, environ={})
    assert s.agent_name == "named"
    assert s.sources["STT_AGENT_AGENT_NAME"] == "other.env"


# --- mode and engine ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "mode", "engine", "why"),
    [
        ({}, "local", "local", ["Local mode", "no LiveKit server configured", "local engine"]),
        (AAI_KEY, "local", "assemblyai", ["Local mode", "ASSEMBLYAI_API_KEY is set"]),
        (LK_TRIO, "room", "local", ["Room mode", "ws://localhost:7880", "local engine"]),
        ({**LK_TRIO, **AAI_KEY}, "room", "assemblyai", ["Room mode", "AssemblyAI"]),
        ({**AAI_KEY, "STT_AGENT_ENGINE": "local"}, "local", "local", ["local engine"]),
        (
            {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": "devkey"},
            "local",
            "local",
            ["Local mode", "incomplete or invalid"],
        ),
    ],
    ids=["nothing", "assemblyai-only", "livekit-only", "both", "forced-local", "half-livekit"],
)
def test_mode_and_engine(
    tmp_path: Path, environ: dict[str, str], mode: str, engine: str, why: list[str]
) -> None:
    s = settings_from(environ, tmp_path)
    assert s.mode == mode
    assert s.engine == engine
    sentence = s.describe_mode()
    for words in why:
        assert words in sentence


def test_valid_full_settings_have_no_problems(tmp_path: Path) -> None:
    s = settings_from({**LK_TRIO, **AAI_KEY, "STT_AGENT_ENGINE": "assemblyai"}, tmp_path)
    assert s.problems() == []


# --- validation ---------------------------------------------------------------------------

KEY_ONLY = {"LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret-for-the-dev-server"}


@pytest.mark.parametrize(
    ("environ", "variable", "says"),
    [
        ({**KEY_ONLY, "LIVEKIT_URL": "htp://x"}, "LIVEKIT_URL", "not a LiveKit server address"),
        (
            {**KEY_ONLY, "LIVEKIT_URL": "localhost:7880"},
            "LIVEKIT_URL",
            "not a LiveKit server address",
        ),
        (
            {**KEY_ONLY, "LIVEKIT_URL": "wss://<project>.livekit.cloud"},
            "LIVEKIT_URL",
            "placeholder",
        ),
        (KEY_ONLY, "LIVEKIT_URL", "empty"),
        (
            {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": "devkey"},
            "LIVEKIT_API_SECRET",
            "empty",
        ),
        (
            {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_SECRET": "secret"},
            "LIVEKIT_API_KEY",
            "empty",
        ),
        ({**LK_TRIO, "LIVEKIT_API_KEY": "<your key>"}, "LIVEKIT_API_KEY", "placeholder"),
        ({**LK_TRIO, "LIVEKIT_API_SECRET": "your_api_secret"}, "LIVEKIT_API_SECRET", "placeholder"),
        ({"ASSEMBLYAI_API_KEY": "<your AssemblyAI key>"}, "ASSEMBLYAI_API_KEY", "placeholder"),
        ({**LK_TRIO, "LIVEKIT_API_SECRET": "abc def ghi"}, "LIVEKIT_API_SECRET", "spaces"),
        (
            {"ASSEMBLYAI_API_KEY": AAI_KEY["ASSEMBLYAI_API_KEY"] + " "},
            "ASSEMBLYAI_API_KEY",
            "spaces",
        ),
        ({**LK_TRIO, "LIVEKIT_API_KEY": '"APIkey123"'}, "LIVEKIT_API_KEY", "quotes"),
        ({"ASSEMBLYAI_API_KEY": "'0123456789abcdef01'"}, "ASSEMBLYAI_API_KEY", "quotes"),
        ({"ASSEMBLYAI_API_KEY": "0123abcd"}, "ASSEMBLYAI_API_KEY", "too short"),
        ({"STT_AGENT_ENGINE": "whisper"}, "STT_AGENT_ENGINE", "not an engine"),
        ({"STT_AGENT_ENGINE": "assemblyai"}, "ASSEMBLYAI_API_KEY", "empty"),
        (
            {"ASSEMBLYAI_BASE_URL": "https://api.assemblyai.com"},
            "ASSEMBLYAI_BASE_URL",
            "not a streaming endpoint",
        ),
    ],
    ids=[
        "url-typo-scheme",
        "url-no-scheme",
        "url-placeholder",
        "url-missing",
        "key-without-secret",
        "secret-without-key",
        "key-placeholder-with-space",
        "secret-placeholder",
        "aai-placeholder",
        "secret-with-spaces",
        "aai-trailing-space",
        "key-in-quotes",
        "aai-in-quotes",
        "aai-too-short",
        "bad-engine",
        "assemblyai-forced-without-key",
        "aai-base-url-https",
    ],
)
def test_problems_say_what_and_how_to_fix(
    tmp_path: Path, environ: dict[str, str], variable: str, says: str
) -> None:
    s = settings_from(environ, tmp_path)
    problems = s.problems()
    assert problems, "expected a problem"
    for p in problems:
        assert p.fix.strip(), f"{p.variable} has no fix"
        assert p.message.strip()
        assert str(p).startswith(p.variable)
        assert p.fix in str(p)
    mine = [p for p in problems if p.variable == variable]
    assert mine, f"no problem about {variable}: {problems}"
    assert any(says in p.message for p in mine), [p.message for p in mine]
    if variable.startswith("LIVEKIT_"):
        # Broken LiveKit settings never select room mode, and the sentence says why.
        assert s.mode == "local"
        assert "incomplete or invalid" in s.describe_mode()


def test_url_problems_point_at_working_addresses(tmp_path: Path) -> None:
    s = settings_from({**KEY_ONLY, "LIVEKIT_URL": "localhost:7880"}, tmp_path)
    (problem,) = s.problems()
    assert "ws://localhost:7880" in problem.fix
    assert "wss://" in problem.fix


# --- secrets never leak -------------------------------------------------------------------


def _assert_absent(text: str, *hidden: str) -> None:
    for value in hidden:
        assert value not in text


def test_secrets_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lk_secret, aai_key = secrets.token_hex(20), secrets.token_hex(16)
    s = settings_from(
        {**LK_TRIO, "LIVEKIT_API_SECRET": lk_secret, "ASSEMBLYAI_API_KEY": aai_key}, tmp_path
    )
    assert s.livekit_api_secret.reveal() == lk_secret
    assert s.assemblyai_api_key.reveal() == aai_key
    assert s.mode == "room"
    assert s.engine == "assemblyai"

    shown = [
        repr(s),
        str(s),
        f"{s}",
        f"{s.livekit_api_secret}",
        f"{s.livekit_api_secret!r}",
        f"{s.assemblyai_api_key:>80}",
        format(s.assemblyai_api_key, "s"),
        str([s.livekit_api_secret]),
        repr(s.as_table()),
        s.describe_mode(),
    ]
    for text in shown:
        _assert_absent(text, lk_secret, aai_key)
    assert "Secret(<40 chars>)" in repr(s)

    logger = logging.getLogger("stt_agent.test")
    with caplog.at_level(logging.INFO, logger="stt_agent.test"):
        logger.info("%s", s)
        logger.info("settings: %r, secret %s", s, s.livekit_api_secret)
    assert len(caplog.records) == 2
    _assert_absent(caplog.text, lk_secret, aai_key)


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda a, b: f"{a} {b}",  # pasted with a space in the middle
        lambda a, b: f" {a}{b}\n",  # a stray line break
        lambda a, b: f'"{a}{b}"',  # quotes that became part of the value
        lambda a, b: "Zq" + a[:3],  # too short (the marker keeps it from matching by chance)
    ],
    ids=["space", "line-break", "quotes", "short"],
)
def test_problems_never_echo_malformed_secrets(tmp_path: Path, make_bad: object) -> None:
    parts = (secrets.token_hex(10), secrets.token_hex(10))
    bad = make_bad(*parts)  # type: ignore[operator]
    s = settings_from({**LK_TRIO, "LIVEKIT_API_SECRET": bad, "ASSEMBLYAI_API_KEY": bad}, tmp_path)
    problems = s.problems()
    assert {p.variable for p in problems} >= {"LIVEKIT_API_SECRET", "ASSEMBLYAI_API_KEY"}
    for p in problems:
        for text in (str(p), repr(p), p.message, p.fix):
            _assert_absent(text, bad.strip(), *parts)
    _assert_absent(repr(s) + repr(s.as_table()) + s.describe_mode(), bad.strip(), *parts)


def test_a_secret_cannot_be_pickled(tmp_path: Path) -> None:
    hidden = secrets.token_hex(20)
    secret = Secret(hidden)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    s = settings_from({**LK_TRIO, "LIVEKIT_API_SECRET": hidden}, tmp_path)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert secret.reveal() == hidden
    assert secret == Secret(hidden)
    assert secret != Secret(hidden + "x")
    assert not Secret("")
    assert repr(Secret("")) == "Secret(<not set>)"


# --- the `check` command ------------------------------------------------------------------


def _run_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("check", *args, cwd=tmp_path, timeout=60)


def test_check_cli_unreachable_server_fails_without_leaking(tmp_path: Path) -> None:
    lk_secret, aai_key = secrets.token_hex(20), secrets.token_hex(16)  # 32 hex, like a real key
    env_file = write_env(
        tmp_path / "workshop.env",
        {
            "LIVEKIT_URL": "ws://127.0.0.1:9",  # the discard port: nothing listens there
            "LIVEKIT_API_KEY": "APIworkshop1",
            "LIVEKIT_API_SECRET": lk_secret,
            "ASSEMBLYAI_API_KEY": aai_key,
            "ASSEMBLYAI_BASE_URL": "ws://127.0.0.1:9",
        },
    )
    result = _run_check(tmp_path, "--env-file", str(env_file))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot reach http://127.0.0.1:9" in output
    assert "✗ LiveKit server" in output
    assert "✗ AssemblyAI" in output
    assert "Secret(<40 chars>)" in output  # the table is there, masked
    _assert_absent(output, lk_secret, aai_key)


def test_check_cli_without_settings_is_local_mode(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # stop .env discovery here
    result = _run_check(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Local mode" in output
    assert "no .env found" in output


def test_check_cli_named_missing_env_file(tmp_path: Path) -> None:
    result = _run_check(tmp_path, "--env-file", "nope.env")
    assert result.returncode != 0
    assert "nope.env" in result.stderr
    assert "Traceback" not in result.stderr


# --- exporting ----------------------------------------------------------------------------


def test_apply_to_environ_exports_without_overwriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    lk_secret = secrets.token_hex(20)
    s = settings_from(
        {
            **LK_TRIO,
            "LIVEKIT_API_SECRET": lk_secret,
            "ASSEMBLYAI_KEYTERMS": "LiveKit, Jupyter",
        },
        tmp_path,
    )
    target = {"LIVEKIT_URL": "wss://already.example", "UNRELATED": "1"}
    s.apply_to_environ(target)

    assert target["LIVEKIT_URL"] == "wss://already.example"  # never overwritten
    assert target["LIVEKIT_API_KEY"] == "devkey"
    assert target["LIVEKIT_API_SECRET"] == lk_secret  # client libraries need the real value
    assert target["ASSEMBLYAI_KEYTERMS"] == "LiveKit,Jupyter"
    assert target["UNRELATED"] == "1"
    assert "ASSEMBLYAI_API_KEY" not in target  # unset values are not exported as ""
    assert "STT_AGENT_AGENT_NAME" not in target
    assert not any(var in os.environ for var in ENV_VARS)  # a given dict means only that dict


@pytest.mark.parametrize("value", ["0", "-2", "four", "1.5"])
def test_a_stream_capacity_that_is_not_a_positive_whole_number_is_a_problem(value: str) -> None:
    s = load_settings(environ={"STT_AGENT_MAX_STREAMS": value})
    [problem] = [p for p in s.problems() if p.variable == "STT_AGENT_MAX_STREAMS"]
    assert "at least 1" in problem.message and "e.g. 4" in problem.fix


def test_a_stream_capacity_is_read_as_a_number() -> None:
    assert load_settings(environ={"STT_AGENT_MAX_STREAMS": "6"}).max_streams == 6
    assert load_settings(environ={}).max_streams is None
