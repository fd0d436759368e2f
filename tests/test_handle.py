"""The agent handle's rules, without any agent behind it: one agent at a time, stopped is final."""

from __future__ import annotations

import asyncio
import threading

import pytest

import stt_agent
from stt_agent.handle import REPLACED, current_agent, new_handle


async def test_a_replaced_agent_keeps_saying_why_whatever_its_jobs_report_late():
    first = await new_handle("room")
    first.report(state="in_job", room="workshop", participants=("ada",))
    second = await new_handle("local")
    assert current_agent() is second
    assert first.status.state == "stopped" and first.status.detail == REPLACED
    # late events from the first agent's job thread
    done = threading.Event()

    def job_thread() -> None:
        first.report(detail="transcribing")
        first.report(state="registered", room=None, detail="job ended")
        first.report(participants=())
        done.set()

    threading.Thread(target=job_thread).start()
    await asyncio.to_thread(done.wait)
    await asyncio.sleep(0)  # the hops onto this loop run
    assert first.status.state == "stopped" and first.status.detail == REPLACED
    assert first.status.participants == ()  # who left may still be said
    await second.stop()
    assert current_agent() is None


async def test_a_failure_is_the_kits_error_and_survives_stop():
    handle = await new_handle("room")
    handle.fail("the LiveKit server at ws://127.0.0.1:1 refused the API key/secret (HTTP 401)")
    with pytest.raises(stt_agent.RoomError, match="refused the API key"):
        await handle.wait_ready(timeout=1)
    await handle.stop()
    assert handle.status.state == "error" and "HTTP 401" in str(handle.status)
    local = await new_handle("local")
    local.fail(RuntimeError("the decoder fell over"))
    with pytest.raises(stt_agent.EngineError, match="RuntimeError: the decoder fell over"):
        await local.wait_ready(timeout=1)
    await local.stop()
