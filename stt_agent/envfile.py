"""The `.env` file: where it is, writing it safely, and whether git keeps it out of commits.

One rule for the repository root, used both to find `.env` and to write it: the first folder
from here upwards holding `.git` or `pyproject.toml`. So a notebook in `notebooks/` finds the
repository's `.env` the way `python stt_agent.py dev` in the tutorial finds its own, and the
credentials form writes it where every notebook will look.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values, set_key, unset_key

from .errors import ConfigError

__all__ = [
    "GitIgnoreStatus",
    "default_env_path",
    "file_mode",
    "find_env_file",
    "gitignore_status",
    "repo_root",
    "write_env_file",
]


def _is_root(folder: Path) -> bool:
    return (folder / ".git").exists() or (folder / "pyproject.toml").is_file()


def repo_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The first folder from `start` (default: the working folder) upwards holding `.git` or
    `pyproject.toml`, or None outside a repository."""
    here = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if _is_root(folder)), None)


def find_env_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest `.env` from `start` (default: the working folder) up to the repo root."""
    here = Path(start or Path.cwd()).resolve()
    root = repo_root(here)
    if root is None:
        # Not inside a repository: only the folder's own .env counts, never a stray one in a
        # parent such as the home folder.
        local = here / ".env"
        return local if local.is_file() else None
    below_root = (here, *here.parents[: len(here.parts) - len(root.parts)])
    return next((f / ".env" for f in below_root if (f / ".env").is_file()), None)


def default_env_path(start: str | os.PathLike[str] | None = None) -> Path:
    """`<repo root>/.env`, where `load_settings()` finds it from any notebook; the folder's own
    `.env` outside a repository."""
    return (repo_root(start) or Path(start or Path.cwd()).resolve()) / ".env"


def file_mode(path: str | os.PathLike[str]) -> str:
    """Permission bits in octal, as `chmod` takes them: '0600' is read and write for the
    owner only."""
    return f"{stat.S_IMODE(os.stat(path).st_mode):04o}"


def write_env_file(
    path: str | os.PathLike[str], values: Mapping[str, str | None]
) -> tuple[list[str], list[str]]:
    """Set (or, with None, remove) variables in a `.env`, keeping every other line as it was.

    python-dotenv's `set_key`/`unset_key` do the editing: they write a temporary file (mode
    0600) next to the target and move it into place, keeping the target's mode. So the target
    is made 0600 first, before any secret goes in: a secret is never readable by other users,
    not even for a moment. Returns (variables written, variables removed).
    """
    for name, value in values.items():
        if value is not None and "${" in value:
            # python-dotenv expands ${NAME} when reading, even inside single quotes.
            raise ConfigError(
                f"{name}: a value holding '${{' would be read back changed (it is how a .env "
                "refers to another variable); check what was pasted"
            )
    target = Path(os.path.realpath(Path(path).expanduser()))
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_CREAT's mode only applies to a new file and umask narrows it; fchmod covers both.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    present = dotenv_values(target)
    written: list[str] = []
    removed: list[str] = []
    for name, value in values.items():
        if value is not None:
            set_key(target, name, value, quote_mode="auto")
            written.append(name)
        elif name in present:
            unset_key(target, name)
            removed.append(name)
    return written, removed


@dataclass(frozen=True)
class GitIgnoreStatus:
    path: Path
    gitignore: Path | None
    listed: bool  # `.gitignore` at the repository root has a line for `.env`
    git_output: str  # what `git check-ignore -v` said, or why it did not run
    ignored: bool | None  # git's verdict; None when git is missing or this is no git repository

    def __str__(self) -> str:
        if self.gitignore is None:
            listed = "no .gitignore at the repository root"
        else:
            listed = f"{self.gitignore} {'lists' if self.listed else 'does NOT list'} .env"
        verdict = {
            True: "git will never commit it.",
            False: "WARNING: git would commit it; add a line `.env` to .gitignore.",
            None: "",
        }[self.ignored]
        return f"{listed}\ngit check-ignore: {self.git_output}\n{verdict}".rstrip()


def gitignore_status(path: str | os.PathLike[str] | None = None) -> GitIgnoreStatus:
    """Whether the `.env` at `path` (default: the repo root's) is git-ignored, asked two ways:
    the `.gitignore` file and `git check-ignore -v` (when git is installed)."""
    env_path = Path(path) if path is not None else default_env_path()
    env_path = env_path.expanduser().resolve()
    root = repo_root(env_path.parent)
    gitignore = root / ".gitignore" if root is not None else None
    listed = False
    if gitignore is not None and gitignore.is_file():
        patterns = {line.strip() for line in gitignore.read_text(encoding="utf-8").splitlines()}
        listed = bool(patterns & {".env", "/.env", ".env*", "*.env", "**/.env"})
    elif gitignore is not None:
        gitignore = None

    def status(output: str, ignored: bool | None) -> GitIgnoreStatus:
        return GitIgnoreStatus(env_path, gitignore, listed, output, ignored)

    git = shutil.which("git")
    if git is None:
        return status("git is not installed", None)
    try:
        run = subprocess.run(
            [git, "-C", str(env_path.parent), "check-ignore", "-v", "--", str(env_path)],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return status(f"could not run ({type(e).__name__})", None)
    if run.returncode == 0:
        return status(run.stdout.strip(), True)
    if run.returncode == 1:
        return status("no rule matches (exit 1)", False)
    reason = (run.stderr.strip().splitlines() or ["failed"])[0]
    if "not a git repository" in reason:
        reason = "not inside a git repository, so there is nothing to commit it to"
    return status(reason, None)
