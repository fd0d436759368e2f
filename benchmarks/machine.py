"""What the numbers were measured on: they mean little without it."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = (
    "livekit-agents",
    "livekit-plugins-silero",
    "faster-whisper",
    "ctranslate2",
    "onnxruntime",
    "numpy",
    "av",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, object]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": versions,
    }


def short(machine: dict[str, object]) -> str:
    packages = machine.get("packages") or {}
    assert isinstance(packages, dict)
    return (
        f"{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"livekit-agents {packages.get('livekit-agents')}, "
        f"faster-whisper {packages.get('faster-whisper')}"
    )
