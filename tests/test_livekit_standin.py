"""The LiveKit stand-in, exercised with the real livekit-agents worker and livekit-api client.

These tests also pin down how livekit-agents 1.8.9 behaves against a server, which the kit's
runtime has to cope with: how it retries a refused key, and what it reports for a failed job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit import api
from livekit.agents import AgentServer, JobContext, JobExecutorType

from tests.standins.livekit_server import RTC_NOT_IMPLEMENTED, LiveKitStandIn

REPO = Path(__file__).resolve().parents[1]
AGENT_NAME = "standin-test"
WRONG_SECRET = "not-the-secret-but-also-32-characters-long"


@pytest.fixture(autouse=True)
def _restore_livekit_env() -> Iterator[None]:
    # AgentServer.run() writes LIVEKIT_URL/API_KEY/API_SECRET into os.environ; undo that so one
    # test's stand-in port or wrong secret cannot leak into the next test
    names = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
async def lk() -> AsyncIterator[LiveKitStandIn]:
    async with LiveKitStandIn() as standin:
        yield standin


@pytest.fixture
async def lk_no_media() -> AsyncIterator[LiveKitStandIn]:
    """A server that refuses rooms (/rtc answers 501): the failure path of a job."""
    async with LiveKitStandIn(media=False) as standin:
        yield standin


def make_server(lk: LiveKitStandIn, *, api_secret: str | None = None, **kwargs: Any) -> AgentServer:
    """A real AgentServer pointed at the stand-in, running jobs in threads like the kit does."""
    return AgentServer(
        ws_url=lk.ws_url,
        api_key=lk.api_key,
        api_secret=api_secret or lk.api_secret,
        job_executor_type=JobExecutorType.THREAD,
        host="127.0.0.1",  # the worker's own health-check HTTP server; port 0 in devmode
        **kwargs,
    )


@contextlib.asynccontextmanager
async def running(server: AgentServer) -> AsyncIterator[asyncio.Task[None]]:
    """Run the server on the current loop (no CLI, no signal handlers); always close it."""
    task = asyncio.create_task(server.run(devmode=True, unregistered=False))
    try:
        yield task
    finally:
        await asyncio.wait_for(server.aclose(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


async def test_worker_registers_with_the_standin(lk: LiveKitStandIn) -> None:
    server = make_server(lk)
    registered = asyncio.Event()
    server.on("worker_registered", lambda *_: registered.set())
    server.rtc_session(lambda ctx: asyncio.sleep(0), agent_name=AGENT_NAME)

    async with running(server):
        worker_id = await lk.wait_for_worker()
        await asyncio.wait_for(registered.wait(), 5)

        assert worker_id.startswith("AW_")
        assert server.id == worker_id  # the id we sent is the one the worker adopted
        (worker,) = lk.workers
        assert (worker.type, worker.agent_name, worker.version) == ("JT_ROOM", AGENT_NAME, "1.8.9")
        assert worker.namespace == ""
        assert worker.permissions.agent and worker.permissions.can_publish
        # the worker sends UpdateWorkerStatus every 2.5 s once registered
        await asyncio.sleep(2.7)
        assert worker.status_updates
        assert lk.auth_failures == 0


async def test_wrong_secret_is_refused_and_the_worker_gives_up_after_max_retry(
    lk: LiveKitStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="livekit.agents")
    server = make_server(lk, api_secret=WRONG_SECRET, max_retry=2)
    server.rtc_session(lambda ctx: asyncio.sleep(0))

    started = time.monotonic()
    async with running(server) as task:
        # retry_count 0 -> sleep 0 s, 1 -> sleep 2 s, 2 -> give up: 3 handshakes in about 2 s
        with pytest.raises(RuntimeError, match="failed to connect to livekit after 2 attempts"):
            await asyncio.wait_for(task, 10)
        elapsed = time.monotonic() - started

    assert lk.workers == []
    assert lk.auth_failures == 3
    times = [f.at for f in lk.auth_failure_log]
    # LiveKit's back-off: 2 s before the third try. Lower bounds
    # only: a busy machine can stretch the waits, never shorten them.
    assert times[2] - times[1] > 1.8
    assert elapsed > 1.8
    assert {f.reason for f in lk.auth_failure_log} == {
        "invalid token: Signature verification failed"
    }
    warnings = [
        r for r in caplog.records if r.getMessage().startswith("failed to connect to livekit")
    ]
    assert [r.getMessage() for r in warnings] == [
        "failed to connect to livekit, retrying in 0s",
        "failed to connect to livekit, retrying in 2s",
    ]
    # the 401 is only visible inside the log record's `error` extra (a WSServerHandshakeError,
    # whose repr also contains the request headers, i.e. the worker's JWT)
    assert all(isinstance(r.error, aiohttp.WSServerHandshakeError) for r in warnings)
    assert all(r.error.status == 401 for r in warnings)


async def test_wrong_secret_with_default_max_retry_keeps_retrying_silently(
    lk: LiveKitStandIn,
) -> None:
    server = make_server(lk, api_secret=WRONG_SECRET)  # max_retry=16: gives up after ~130 s
    server.rtc_session(lambda ctx: asyncio.sleep(0))

    async with running(server) as task:
        await lk.wait_for_auth_failures(3, timeout=5)
        await asyncio.sleep(0.5)
        # no storm (backoff 0, 2, 4, 6, 8, 10, 10 ... s) but also no error: run() just waits
        assert lk.auth_failures == 3
        assert not task.done()
        assert server.id == "unregistered"


async def test_dispatched_job_fails_to_join_the_room_and_the_worker_stays_up(
    lk_no_media: LiveKitStandIn,
) -> None:
    lk = lk_no_media
    seen: list[tuple[str, str, str]] = []  # (thread name, room name, connect error)

    async def entrypoint(ctx: JobContext) -> None:
        try:
            await ctx.connect()
        except Exception as e:
            seen.append((threading.current_thread().name, ctx.room.name, str(e)))
            raise

    server = make_server(lk)
    server.rtc_session(entrypoint, agent_name=AGENT_NAME)

    async with running(server):
        worker_id = await lk.wait_for_worker()
        with pytest.raises(LookupError):
            await lk.dispatch_job("room-a", agent_name="someone-else")

        job_id = await lk.dispatch_job("room-a", agent_name=AGENT_NAME)
        assert job_id.startswith("AJ_")
        assert lk.jobs[job_id].state.worker_id == worker_id
        await lk.wait_for_job_status(job_id, {"JS_RUNNING"})
        end = await lk.wait_for_job_status(job_id, {"JS_SUCCESS", "JS_FAILED"}, timeout=20)

        # the entrypoint ran in a job thread and rtc.Room.connect got the stand-in's 501
        ((thread_name, room_name, error),) = seen
        assert thread_name == "job_thread_runner"
        assert room_name == "room-a"
        assert "501" in error and RTC_NOT_IMPLEMENTED in error
        assert lk.rtc_requests and lk.rtc_requests[0].startswith("/rtc")
        # livekit-agents 1.8.9 reports the crashed job as a *success* with no error text: the
        # thread executor sets SUCCESS whenever its thread ends (the process executor does the
        # same on exit code 0). A kit must detect job failures itself, not from this status.
        assert end == (job_id, "JS_SUCCESS", "")
        assert [u[1] for u in lk.job_updates if u[0] == job_id] == ["JS_RUNNING", "JS_SUCCESS"]

        # the worker connection survived and still takes jobs
        assert lk.workers[0].connected and len(lk.workers) == 1
        second = await lk.dispatch_job("room-b", agent_name=AGENT_NAME)
        await lk.wait_for_job_status(second, {"JS_SUCCESS", "JS_FAILED"}, timeout=20)
        assert lk.workers[0].connected and lk.auth_failures == 0


async def test_worker_shuts_down_cleanly_within_5s(lk: LiveKitStandIn) -> None:
    server = make_server(lk)
    server.rtc_session(lambda ctx: asyncio.sleep(0))
    task = asyncio.create_task(server.run(devmode=True, unregistered=False))
    await lk.wait_for_worker()

    started = time.monotonic()
    await asyncio.wait_for(server.aclose(), 5)
    await asyncio.wait_for(task, 5)  # run() returns None after aclose()
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.1)
    assert not lk.workers[0].connected  # the worker closed its websocket


async def test_room_service_with_livekit_api(lk: LiveKitStandIn) -> None:
    async with api.LiveKitAPI(
        url=lk.http_url, api_key=lk.api_key, api_secret=lk.api_secret
    ) as lk_api:
        created = await lk_api.room.create_room(api.CreateRoomRequest(name="r1", metadata="m"))
        assert created.name == "r1" and created.sid.startswith("RM_") and created.metadata == "m"
        again = await lk_api.room.create_room(api.CreateRoomRequest(name="r1"))
        assert again.sid == created.sid  # CreateRoom is idempotent

        await lk_api.room.create_room(api.CreateRoomRequest(name="r2"))
        listed = await lk_api.room.list_rooms(api.ListRoomsRequest())
        assert sorted(r.name for r in listed.rooms) == ["r1", "r2"]
        only = await lk_api.room.list_rooms(api.ListRoomsRequest(names=["r2"]))
        assert [r.name for r in only.rooms] == ["r2"]

        people = await lk_api.room.list_participants(api.ListParticipantsRequest(room="r1"))
        assert list(people.participants) == []

        await lk_api.room.delete_room(api.DeleteRoomRequest(room="r1"))
        listed = await lk_api.room.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in listed.rooms] == ["r2"]
        with pytest.raises(api.TwirpError) as missing:
            await lk_api.room.delete_room(api.DeleteRoomRequest(room="r1"))
        assert (missing.value.status, missing.value.code) == (404, "not_found")

    async with api.LiveKitAPI(url=lk.http_url, api_key=lk.api_key, api_secret=WRONG_SECRET) as bad:
        with pytest.raises(api.TwirpError) as refused:
            await bad.room.list_rooms(api.ListRoomsRequest())
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")
    assert "Signature verification failed" in refused.value.message
    assert lk.auth_failures == 1
    assert "r2" in lk.rooms_info  # nothing changed


async def test_room_service_grants_json_and_agent_endpoint_http_errors(lk: LiveKitStandIn) -> None:
    def bearer(grants: api.VideoGrants, key: str | None = None) -> dict[str, str]:
        token = api.AccessToken(key or lk.api_key, lk.api_secret).with_grants(grants).to_jwt()
        return {"Authorization": f"Bearer {token}"}

    rooms = f"{lk.http_url}/twirp/livekit.RoomService"
    async with aiohttp.ClientSession() as http:
        # JSON Twirp, as curl or the JS SDK would send it
        async with http.post(
            f"{rooms}/CreateRoom",
            json={"name": "j1"},
            headers=bearer(api.VideoGrants(room_create=True)),
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["name"] == "j1"

        # a valid token without the method's grant is refused like a bad one
        async with http.post(
            f"{rooms}/ListRooms", json={}, headers=bearer(api.VideoGrants(room_record=True))
        ) as resp:
            assert resp.status == 401
            assert await resp.json() == {"code": "unauthenticated", "msg": "permissions denied"}
        admin_other_room = bearer(api.VideoGrants(room_admin=True, room="elsewhere"))
        async with http.post(
            f"{rooms}/ListParticipants", json={"room": "j1"}, headers=admin_other_room
        ) as resp:
            assert resp.status == 401
        async with http.post(f"{rooms}/ListRooms", json={}) as resp:  # no token at all
            assert resp.status == 401
        async with http.post(f"{rooms}/UpdateRoomMetadata", json={}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == "bad_route"

        # /agent: plain HTTP is a 404, a websocket with an unknown key or no agent grant a 401
        async with http.get(f"{lk.http_url}/agent") as resp:
            assert resp.status == 404
        for headers in (
            bearer(api.VideoGrants(agent=True), key="nokey"),
            bearer(api.VideoGrants()),
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{lk.ws_url}/agent", headers=headers)
            assert refused.value.status == 401

        # /rtc: a plain GET is no websocket; single-PC signalling (/rtc/v1) is absent
        async with http.get(f"{lk.http_url}/rtc") as resp:
            assert resp.status == 400
        async with http.get(f"{lk.http_url}/rtc/v1") as resp:
            assert resp.status == 404

    reasons = [f.reason for f in lk.auth_failure_log]
    assert reasons[-2:] == ["invalid API key: nokey", "permissions denied"]
    assert lk.auth_failures == 5


async def test_rtc_without_media_is_a_quick_501(lk_no_media: LiveKitStandIn) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{lk_no_media.http_url}/rtc/v1") as resp:
        assert resp.status == 501 and await resp.text() == RTC_NOT_IMPLEMENTED
