""".env writing, the repository-root rule, the git-ignore check and the credentials form:
what a learner's Save does to the file, to the widget and to what is shown afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from stt_agent.check import check_settings
from stt_agent.config import load_settings
from stt_agent.envfile import (
    default_env_path,
    file_mode,
    find_env_file,
    gitignore_status,
    repo_root,
    write_env_file,
)
from stt_agent.errors import ConfigError
from stt_agent.ui.credentials_form import CredentialsForm

# --- the repository root, one rule for reading and writing --------------------------------


def test_the_form_writes_where_settings_are_read(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    notebooks = repo / "notebooks"
    notebooks.mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(notebooks)
    assert repo_root() == repo.resolve()
    assert default_env_path() == repo.resolve() / ".env"
    write_env_file(default_env_path(), {"STT_AGENT_AGENT_NAME": "found"})
    assert find_env_file() == repo.resolve() / ".env"
    assert load_settings(environ={}).agent_name == "found"


def test_outside_a_repository_only_the_folder_itself_counts(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    (tmp_path / "a" / ".env").write_text("STT_AGENT_AGENT_NAME=stray\n")
    monkeypatch.chdir(folder)
    if repo_root() is not None:
        pytest.skip("the temporary folder lies inside a repository on this machine")
    assert find_env_file() is None
    assert default_env_path() == folder.resolve() / ".env"


# --- writing .env -------------------------------------------------------------------------


def test_written_file_is_0600_keeps_other_lines_and_reads_back(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# my notes\nOTHER_TOOL=1\nLIVEKIT_URL=ws://old:7880\nLIVEKIT_URL=ws://dup:1\n")
    env.chmod(0o644)  # a file someone created with the usual umask
    tricky = "a'b\"c\\d #e $HOME = " + secrets.token_urlsafe(8)
    written, removed = write_env_file(
        env,
        {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_SECRET": tricky, "GONE": None},
    )
    assert written == ["LIVEKIT_URL", "LIVEKIT_API_SECRET"]
    assert removed == []  # GONE was not in the file
    assert file_mode(env) == "0600"
    text = env.read_text()
    assert text.startswith("# my notes\nOTHER_TOOL=1\n")
    values = dotenv_values(env)
    assert values["LIVEKIT_URL"] == "ws://localhost:7880"  # every duplicate now agrees
    assert values["LIVEKIT_API_SECRET"] == tricky  # quoted so nothing is interpolated
    assert values["OTHER_TOOL"] == "1"


def test_a_value_that_would_read_back_changed_is_refused(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("KEEP=1\n")
    with pytest.raises(ConfigError, match=r"LIVEKIT_API_SECRET: a value holding '\$\{'"):
        write_env_file(env, {"LIVEKIT_URL": "ws://x:1", "LIVEKIT_API_SECRET": "ab${HOME}cd"})
    assert env.read_text() == "KEEP=1\n"  # nothing written at all


def test_none_removes_a_variable(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    write_env_file(env, {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": "devkey"})
    assert write_env_file(env, {"LIVEKIT_URL": None}) == ([], ["LIVEKIT_URL"])
    assert dotenv_values(env) == {"LIVEKIT_API_KEY": "devkey"}


def test_a_new_file_is_never_readable_by_others(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: the writer must not rely on it
    try:
        env = tmp_path / "sub" / ".env"
        write_env_file(env, {"LIVEKIT_API_SECRET": "s" * 20})
    finally:
        os.umask(old_umask)
    assert file_mode(env) == "0600"
    assert [p.name for p in env.parent.iterdir()] == [".env"]  # no temporary file left


def test_a_symlinked_env_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real.env"
    target.write_text("KEEP=1\n")
    link = tmp_path / ".env"
    link.symlink_to(target)
    write_env_file(link, {"LIVEKIT_API_KEY": "devkey"})
    assert link.is_symlink()
    assert dotenv_values(target) == {"KEEP": "1", "LIVEKIT_API_KEY": "devkey"}


# --- is .env kept out of git? ---------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_gitignore_status_asks_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = tmp_path / ".env"
    status = gitignore_status(env)
    assert status.ignored is False and "WARNING" in str(status)
    (tmp_path / ".gitignore").write_text(".env\n")
    status = gitignore_status(env)
    assert status.ignored is True and status.listed
    assert ".gitignore:1:.env" in status.git_output


# --- the form -------------------------------------------------------------------------------


async def test_save_writes_empties_the_secret_fields_and_checks(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# mine\n")
    secret = secrets.token_urlsafe(24)
    form = CredentialsForm(env, timeout_s=2, in_colab=False)
    form.livekit_url.value = "ws://127.0.0.1:9"  # nothing listens: the check says so
    form.livekit_api_key.value = " devkey "  # pasted with spaces around
    form.livekit_api_secret.value = secret

    report = await form.save()

    assert dotenv_values(env) == {
        "LIVEKIT_URL": "ws://127.0.0.1:9",
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": secret,
    }
    assert env.read_text().startswith("# mine\n") and file_mode(env) == "0600"
    assert form.livekit_api_secret.value == ""  # no secret left in the widget's state
    assert "saved in the file" in form.livekit_api_secret.placeholder
    assert not report.ok
    livekit = next(r for r in report.probes if r.service == "LiveKit server")
    assert "cannot reach" in livekit.message
    shown = form.results.value + str(report) + json.dumps(form.get_state(), default=str)
    assert secret not in shown
    assert "Saved LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET" in form.results.value
    # what the form shows is the one check's report, the same `python -m stt_agent check` prints
    again = await check_settings(env, timeout_s=2)
    assert str(again) == str(report)


async def test_an_empty_password_field_keeps_the_saved_secret(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    secret = secrets.token_urlsafe(24)
    write_env_file(env, {"LIVEKIT_API_SECRET": secret, "LIVEKIT_URL": "ws://127.0.0.1:9"})
    form = CredentialsForm(env, timeout_s=2, in_colab=False)
    assert form.livekit_url.value == "ws://127.0.0.1:9"  # text fields show what is saved
    assert form.livekit_api_secret.value == ""  # secrets never come back into the widget
    form.livekit_url.value = ""  # an emptied text field removes its line
    assert form.values_to_save() == {"LIVEKIT_URL": None, "LIVEKIT_API_KEY": None}
    await form.save()
    assert dotenv_values(env) == {"LIVEKIT_API_SECRET": secret}


async def test_in_colab_save_is_a_config_error_and_check_still_works(tmp_path: Path) -> None:
    form = CredentialsForm(tmp_path / ".env", timeout_s=2, in_colab=True)
    assert "Secrets" in form.header.value
    with pytest.raises(ConfigError, match="Secrets panel"):
        await form.save()
    assert not (tmp_path / ".env").exists()
    report = await form.check()
    assert report is form.last_report


async def test_a_settings_file_that_is_not_text_is_one_message(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"LIVEKIT_URL=\xff\xfe\n")
    form = CredentialsForm(env, timeout_s=2, in_colab=False)
    await form._check_clicked()  # what the Check button runs: it must not raise
    assert "cannot be read as a settings file" in form.results.value
