"""Start-up costs, each in a fresh interpreter so nothing is already cached, and memory."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_IMPORT = """
import time
t = time.perf_counter()
import stt_agent
print(time.perf_counter() - t)
"""

_LOAD = """
import json, time
from stt_agent.engines import load_vad, load_whisper
t = time.perf_counter()
load_whisper()
whisper = time.perf_counter() - t
t = time.perf_counter()
load_vad()
vad = time.perf_counter() - t
print(json.dumps({"whisper_s": whisper, "vad_s": vad}))
"""


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ASSEMBLYAI_"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def import_seconds(repeats: int = 3) -> float:
    """Median time of `import stt_agent` in a fresh interpreter."""
    return statistics.median(float(_python(_IMPORT)) for _ in range(repeats))


def model_load_seconds() -> dict[str, float]:
    """`load_whisper()` (with its checksum check) and `load_vad()` in a fresh interpreter."""
    times = json.loads(_python(_LOAD))
    times["total_s"] = times["whisper_s"] + times["vad_s"]
    return times


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
