"""`stt_agent.run_sync`: a coroutine's result from synchronous code, outside any loop, inside a
running loop (as in a Jupyter kernel) and inside a real kernel; nest-asyncio only on demand.

The inside-a-loop cases run in their own process: nest-asyncio patches asyncio process-wide,
and this test process must stay as the other tests expect it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import nbformat
from nbclient import NotebookClient

import stt_agent
from benchmarks.scoring import normalise
from stt_agent import samples
from tests.cli import REPO, clean_env


def _python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_env(),
        timeout=300,
    )


def test_outside_any_loop_it_is_asyncio_run_and_patches_nothing() -> None:
    async def answer() -> str:
        await asyncio.sleep(0)
        return "answered"

    assert stt_agent.run_sync(answer()) == "answered"
    assert not hasattr(asyncio, "_nest_patched")  # nest-asyncio's own marker


def test_importing_the_kit_applies_nothing() -> None:
    result = _python(
        """
        import asyncio, sys
        import stt_agent
        print(hasattr(asyncio, "_nest_patched"), "nest_asyncio" in sys.modules)
        """
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_inside_a_running_loop_it_transcribes_and_the_loop_keeps_going() -> None:
    """What a learner who forgot `await` does in a cell: a plain call inside the running loop."""
    result = _python(
        f"""
        import asyncio
        import stt_agent

        async def cell():
            ticks = 0

            async def ticker():  # another task on the same loop, like the kernel's own
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(ticker())
            try:
                asyncio.run(asyncio.sleep(0))
            except RuntimeError as e:
                print("asyncio.run:", e)
            utterances = stt_agent.run_sync(stt_agent.transcribe_file({str(samples.path("jfk"))!r}))
            task.cancel()
            print("ticks:", ticks)
            print("text:", " ".join(u.text for u in utterances))

        asyncio.run(cell())
        """
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert "running event loop" in lines["asyncio.run"]  # what run_sync is for
    assert int(lines["ticks"]) > 0  # the outer loop's tasks ran while it waited
    assert "ask not what your country can do for you" in normalise(lines["text"])


def test_inside_a_jupyter_kernel() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import asyncio, stt_agent\n"
            "async def answer():\n"
            "    await asyncio.sleep(0.05)\n"
            "    return 'answered'\n"
            "refused = answer()\n"
            "try:\n"
            "    asyncio.run(refused)\n"
            "except RuntimeError as e:\n"
            "    refused.close()\n"
            "    print('asyncio.run:', e)\n"
            "print(stt_agent.run_sync(answer()))"
        )
    ]
    NotebookClient(nb, kernel_name="python3", timeout=120, startup_timeout=60).execute(
        env={**clean_env(), "PYTHONPATH": str(REPO)}
    )
    outputs = nb.cells[0].outputs
    said = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout").splitlines()
    assert "running event loop" in said[0]  # the kernel's loop is running: asyncio.run refuses
    assert said[1:] == ["answered"], said
