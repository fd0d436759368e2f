"""Room mode against the LiveKit agent-worker stand-in on 127.0.0.1.

Registration, refused keys and a job that cannot join its room (the stand-in started with
`media=False` refuses `/rtc`): a failed job shows up as an error while the worker stays
registered. Jobs that do join and transcribe are in test_room_media.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

import stt_agent
from stt_agent.config import Secret, Settings
from stt_agent.handle import REPLACED, current_agent
from tests.standins.livekit_server import LiveKitStandIn


@pytest.fixture(autouse=True)
def _keep_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
async def lk() -> AsyncIterator[LiveKitStandIn]:
    async with LiveKitStandIn() as standin:
        yield standin


@pytest.fixture
async def lk_no_media() -> AsyncIterator[LiveKitStandIn]:
    async with LiveKitStandIn(media=False) as standin:
        yield standin


def _settings(lk: LiveKitStandIn, secret: str | None = None) -> Settings:
    return Settings(
        livekit_url=lk.ws_url,
        livekit_api_key=lk.api_key,
        livekit_api_secret=Secret(secret or lk.api_secret),
    )


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def test_registration_shows_in_status_and_stop_is_quick(lk):
    root_handlers = list(logging.getLogger().handlers)
    sigint = signal.getsignal(signal.SIGINT)
    lk_logger = logging.getLogger("livekit.agents")
    propagate_before = lk_logger.propagate

    handle = await stt_agent.start_agent(_settings(lk))
    assert handle.status.state == "starting"  # returned at once, before registering
    status = await handle.wait_ready(timeout=10)
    worker_id = await lk.wait_for_worker()
    assert status.state == "registered"
    assert status.worker_id == worker_id
    assert signal.getsignal(signal.SIGINT) is sigint  # no signal handlers installed
    assert any("registered worker" in line for line in handle.logs)

    await asyncio.wait_for(handle.stop(), 30)  # a hang guard: stop() bounds itself
    assert handle.status.state == "stopped"
    await asyncio.wait_for(handle.stop(), 30)  # a second stop waits for the first; no error
    assert handle.status.state == "stopped"
    assert logging.getLogger().handlers == root_handlers  # logging as we found it
    assert lk_logger.propagate is propagate_before
    assert asyncio.get_running_loop().is_running()


async def test_wrong_secret_is_a_clear_error_without_a_reconnect_storm(lk):
    wrong = "not-the-secret-but-also-32-characters-long"
    handle = await stt_agent.start_agent(_settings(lk, wrong))
    with pytest.raises(stt_agent.RoomError, match="refused the API key/secret"):
        await handle.wait_ready(timeout=30)  # a hang guard; the storm is counted below
    assert handle.status.state == "error"
    assert "HTTP 401" in handle.status.error
    assert wrong not in handle.status.error and wrong not in "\n".join(handle.logs)
    await asyncio.sleep(3)  # LiveKit's own retry would have tried again by now
    assert lk.auth_failures <= 3
    await handle.stop()


async def test_failed_job_shows_as_an_error_while_the_worker_stays_up(lk_no_media):
    lk = lk_no_media
    handle = await stt_agent.start_agent(_settings(lk))
    await handle.wait_ready(timeout=10)
    worker_id = handle.status.worker_id
    job_id = await lk.dispatch_job("workshop-room")
    await _until(lambda: handle.status.error is not None)
    assert "workshop-room" in handle.status.error
    assert "ConnectError" in handle.status.error
    assert handle.status.state == "registered"
    assert handle.status.worker_id == worker_id
    await lk.wait_for_job_status(job_id, {"JS_SUCCESS", "JS_FAILED"})
    # still registered: a second job is accepted
    second = await lk.dispatch_job("another-room")
    assert second != job_id
    await handle.stop()


async def test_a_second_worker_replaces_the_first_which_says_so(lk):
    livekit_log = logging.getLogger("livekit")
    propagate = livekit_log.propagate
    first = await stt_agent.start_agent(_settings(lk))
    await first.wait_ready(timeout=10)
    second = await stt_agent.start_agent(_settings(lk))
    assert first.status.state == "stopped" and first.status.detail == REPLACED
    assert current_agent() is second
    status = await second.wait_ready(timeout=10)
    assert status.state == "registered" and status.worker_id != first.status.worker_id
    await second.stop()
    assert current_agent() is None
    assert livekit_log.propagate == propagate  # both workers gave the loggers back


async def test_room_mode_needs_livekit_settings():
    with pytest.raises(stt_agent.ConfigError, match="room mode needs a LiveKit server"):
        await stt_agent.start_agent(Settings())
    with pytest.raises(ValueError, match="LIVEKIT_URL"):
        await stt_agent.start_agent(
            Settings(
                livekit_url="htp://x", livekit_api_key="APIabc", livekit_api_secret=Secret("s" * 32)
            )
        )
