"""Running `python -m stt_agent` the way a learner would, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_KIT_PREFIXES = ("LIVEKIT_", "ASSEMBLYAI_", "STT_AGENT_")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any of the kit's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_KIT_PREFIXES)}
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stt_agent", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env() if env is None else env,
        timeout=timeout,
    )
