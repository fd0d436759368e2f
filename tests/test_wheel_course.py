"""The course from a pip-installed wheel, far from this repository.

Builds the wheel, makes a fresh environment, lets notebook 01's set-up cell install the wheel
into it (as it would install the pinned release in Colab), copies only notebooks/ into an
unrelated folder and runs there, with no .env, no ../shared and no repository on the path, the
notebooks whose behaviour depends on where the kit is installed: 01 and 03, which start the
kit's own LiveKit server and keep the same promises as from the repository, and 02, whose
settings and credentials form look for the project folder. Everything else the notebooks use
from the kit is proved present in the same environment without running them again (their
promises are checked in tests/test_notebooks.py): every module of the installed kit imports,
every file of stt_agent/ (samples, widget JavaScript, the caption page) is installed, every
sample loads, and the AssemblyAI simulator starts.

The fresh environment is a new venv whose own site-packages starts empty. Installing the
kit's dependencies from scratch would take many minutes, so it sees this venv's installed
packages through a folder of links (everything except the kit itself), the way a
`--system-site-packages` venv sees its base: pip finds the dependencies satisfied and installs
the wheel alone, with no index (PIP_NO_INDEX).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tools import course

# room_media: notebooks 01, 03 and 06 run rooms with media on the kit's LiveKit server
pytestmark = [pytest.mark.notebooks, pytest.mark.room_media]

REPO = Path(__file__).resolve().parents[1]
# Run from the wheel: the notebooks that behave differently when the kit is installed.
FROM_THE_WHEEL = ["01_livekit_constructs", "02_credentials", "03_transcriber_agent"]
CELL_TIMEOUT_S = 240
# Left out of the source copy the wheel is built from: caches, builds, environments.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)
KIT_PREFIXES = ("stt_agent", "stt-agent", "__editable__")

# Runs inside the fresh environment: execute notebooks with nbclient on that environment's
# own python3 kernel, and report as JSON what happened.
RUNNER = r"""
import json, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from jupyter_client.kernelspec import KernelSpecManager

spec = KernelSpecManager().get_kernel_spec("python3")
report = {"kernel": spec.argv[0], "runs": []}
for name in sys.argv[2:]:
    path = Path(sys.argv[1]) / name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT, startup_timeout=60,
                            resources={"metadata": {"path": str(path.parent)}})
    started, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e)[-3000:]
    except Exception as e:
        error = f"{type(e).__name__}: {e}"[-3000:]
    nbformat.write(nb, path)
    report["runs"].append({"notebook": name, "seconds": round(time.perf_counter() - started, 1),
                           "error": error})
print(json.dumps(report))
"""


# Runs inside the fresh environment: what the installed kit holds and whether it works, as JSON.
KIT_CHECK = r"""
import asyncio, importlib, json, pkgutil
from pathlib import Path
import stt_agent
from stt_agent import samples
from stt_agent.engines.assemblyai_simulator import AssemblyAISimulator

root = Path(stt_agent.__file__).parent
failed = {}
for module in pkgutil.walk_packages([str(root)], "stt_agent."):
    try:
        importlib.import_module(module.name)
    except Exception as e:
        failed[module.name] = f"{type(e).__name__}: {e}"


async def simulator_url():
    simulator = await AssemblyAISimulator().start()
    try:
        return simulator.url
    finally:
        await simulator.aclose()


print(json.dumps({
    "root": str(root),
    "import_failures": failed,
    "files": sorted(str(p.relative_to(root)) for p in root.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts),
    "samples": {name: int(samples.load(name).size) for name in samples.names()},
    "simulator": asyncio.run(simulator_url()),
}))
"""


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = tmp / "dist"
    result = subprocess.run(
        # no build isolation: the tests run in a network namespace with no package index, and
        # the pinned setuptools (requirements-dev.txt) is already here
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(dist),
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"building the wheel failed:\n{result.stderr[-3000:]}"
    [wheel] = dist.glob("stt_agent-*.whl")
    return wheel


def _fresh_environment(tmp: Path) -> Path:
    """A new venv (from the base interpreter) that sees this venv's packages, except the kit."""
    env_dir = tmp / "fresh-venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = tmp / "shared-packages"
    shared.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(KIT_PREFIXES) and entry.suffix != ".pth":
            (shared / entry.name).symlink_to(entry)
    (Path(purelib) / "_stt_agent_test_shared.pth").write_text(f"{shared}\n")
    return python


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIVEKIT_", "ASSEMBLYAI_", "STT_AGENT_", "JUPYTER", "PYTHON", "PIP_"))
        and k not in ("VIRTUAL_ENV", "MPLBACKEND")
    }
    home = tmp / "jupyter-home"
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        MPLCONFIGDIR=str(home / "matplotlib"),
        **extra,
    )
    return env


def _run(python: Path, folder: Path, names: list[str], env: dict[str, str]) -> dict:
    script = folder.parent / "run_notebooks.py"
    script.write_text(RUNNER.replace("TIMEOUT", str(CELL_TIMEOUT_S)))
    result = subprocess.run(
        [python, str(script), str(folder), *names],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=CELL_TIMEOUT_S * 4 * max(len(names), 1),
    )
    assert result.returncode == 0, f"the notebook runner failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _check_the_installed_kit(python: Path, folder: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [python, "-c", KIT_CHECK], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"checking the installed kit failed:\n{result.stderr[-3000:]}"
    kit = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(kit["root"]).is_relative_to(python.parent.parent), kit["root"]
    assert not kit["import_failures"], kit["import_failures"]
    source = REPO / "stt_agent"
    shipped = {
        str(p.relative_to(source))
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert shipped <= set(kit["files"]), f"not in the wheel: {sorted(shipped - set(kit['files']))}"
    assert kit["samples"] and all(size > 16_000 for size in kit["samples"].values()), kit["samples"]
    assert kit["simulator"].startswith("ws://127.0.0.1:"), kit["simulator"]


def test_the_course_runs_from_the_wheel_in_an_unrelated_folder(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    python = _fresh_environment(tmp_path)
    missing = subprocess.run(
        [python, "-c", "import stt_agent"],
        capture_output=True,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
    )
    assert missing.returncode != 0, "the fresh environment already has the kit"

    # An unrelated folder: only notebooks/, nothing of the repository around it.
    course_dir = tmp_path / "elsewhere" / "my-course"
    shutil.copytree(REPO / "notebooks", course_dir, ignore=shutil.ignore_patterns("*.jsonl"))
    assert not (course_dir.parent / "shared").exists() and not (course_dir / ".env").exists()

    # 1. The set-up cell installs the kit when it is missing, from the wheel (no index).
    import nbformat

    setup = nbformat.v4.new_notebook()
    setup.cells = [nbformat.v4.new_code_cell(course.setup_cell(*course.course()))]
    nbformat.write(setup, course_dir.parent / "setup-only.ipynb")
    env = _clean_env(tmp_path, STT_AGENT_PIP_SPEC=str(wheel), PIP_NO_INDEX="1")
    report = _run(python, course_dir.parent, ["setup-only.ipynb"], env)
    assert report["runs"][0]["error"] is None, report
    installed = subprocess.run(
        [python, "-c", "import stt_agent, sys; print(stt_agent.__file__); print(sys.prefix)"],
        capture_output=True,
        text=True,
        cwd=course_dir,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr
    kit_file, prefix = installed.stdout.split()
    assert Path(kit_file).is_relative_to(prefix) and prefix == str(python.parent.parent)
    assert Path(report["kernel"]).parent == python.parent or report["kernel"] in (
        "python",
        "python3",
    )

    # 2. What the notebooks use from the kit is all there, from the wheel, and works.
    env = _clean_env(tmp_path, PIP_NO_INDEX="1")
    _check_the_installed_kit(python, course_dir, env)

    # 3. The notebooks that depend on where the kit is installed, top to bottom, there. Each
    # one's set-up cell now does nothing.
    report = _run(python, course_dir, [f"{name}.ipynb" for name in FROM_THE_WHEEL], env)
    timings = {r["notebook"]: r["seconds"] for r in report["runs"]}
    print(f"wheel {wheel.name} ({wheel.stat().st_size / 1e6:.2f} MB); notebooks: {timings}")
    failed = {r["notebook"]: r["error"] for r in report["runs"] if r["error"]}
    assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())
    # No room cell skipped on the wheel's own LiveKit server: the same promises as from the
    # repository (bob hears alice; kennedy, ada and grace transcribed under their names, from
    # the recordings the wheel ships).
    from tests.test_notebooks import PROMISES

    for name in ("01_livekit_constructs", "03_transcriber_agent"):
        PROMISES[name](nbformat.read(course_dir / f"{name}.ipynb", as_version=4))
