"""The kit's LiveKit development server (`stt_agent.devserver`), as a learner meets it.

`python -m stt_agent server --dev` in its own process, joined by LiveKit's own clients from
outside the project (`livekit.rtc`, livekit-api, a raw websocket where a test needs to
misbehave), and `stt_agent.DevServer` on the test's loop for what needs a knob (the ping
timeout) or a look inside (queues).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from livekit import api, rtc
from livekit.protocol import models
from livekit.protocol import rtc as rtc_proto

import stt_agent
from benchmarks.scoring import corpus_wer, normalise
from stt_agent import samples
from stt_agent.config import Secret, Settings
from stt_agent.devserver.data import PENDING_PACKETS, DataChannels
from stt_agent.devserver.media import SUBSCRIBER_QUEUE_FRAMES, PublishedTrack
from stt_agent.errors import ConfigError
from stt_agent.probes import probe_livekit
from stt_agent.room.speaker import VirtualSpeaker
from tests.cli import REPO, clean_env, run_cli

DEV_KEY, DEV_SECRET = "devkey", "secret"
JOIN_TIMEOUT_S = 20.0
MEDIA_TIMEOUT_S = 90.0
SPEAKER_WER_LIMIT = 0.25  # as in test_room_media: two Opus encodings, tiny.en
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CliServer:
    proc: asyncio.subprocess.Process
    url: str
    ready_line: str
    stderr: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return "http" + self.url[2:]

    def token(self, identity: str, room: str, **grants: bool) -> str:
        return (
            api.AccessToken(DEV_KEY, DEV_SECRET)
            .with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room, **grants))
            .to_jwt()
        )

    def settings(self) -> Settings:
        return Settings(
            livekit_url=self.url, livekit_api_key=DEV_KEY, livekit_api_secret=Secret(DEV_SECRET)
        )


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        into.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def _cli_server(*extra: str) -> AsyncIterator[CliServer]:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stt_agent",
        "server",
        "--port",
        str(port),
        "--dev",
        *extra,
        cwd=REPO,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr: list[str] = []
    drain = asyncio.ensure_future(_drain(proc.stderr, stderr))
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "ready" in line, (line, stderr)
        yield CliServer(proc, f"ws://127.0.0.1:{port}", line, stderr)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(drain, 10)


async def _wait_until(predicate, timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
    assert predicate(), what


# --- the command ---------------------------------------------------------------------------


async def test_server_command_prints_ready_and_stops_on_ctrl_c_with_one_line() -> None:
    async with _cli_server() as server:
        assert server.url in server.ready_line and "devkey" in server.ready_line
        async with aiohttp.ClientSession() as http, http.get(server.http_url + "/") as resp:
            assert resp.status == 200 and resp.headers["Server"].startswith("stt-agent-devserver")
        assert server.proc.stdout is not None
        server.proc.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(server.proc.stdout.read(), 30)).decode()
        await asyncio.wait_for(server.proc.wait(), 30)
    assert server.proc.returncode == 0
    lines = rest.strip().splitlines()
    assert lines[-1] == "stt-agent server: stopped"
    assert not any("Traceback" in line for line in server.stderr), server.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20"])
def test_dev_keys_on_a_network_address_are_refused(host: str) -> None:
    result = run_cli("server", "--dev", "--host", host, "--port", "0")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("stt-agent: server: --dev is for 127.0.0.1 only") and host in line


def test_without_dev_the_fresh_secret_goes_to_the_env_file_only(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    port = _free_port()
    proc = asyncio.run(_start_and_stop("--port", str(port), "--env-file", str(env_file)))
    out, err, code = proc
    assert code == 0 and "ready" in out.splitlines()[0]
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line)
    secret = written["LIVEKIT_API_SECRET"].strip("'\"")
    assert written["LIVEKIT_URL"].strip("'\"") == f"ws://127.0.0.1:{port}"
    assert written["LIVEKIT_API_KEY"].strip("'\"").startswith("API") and len(secret) >= 32
    assert secret not in out and secret not in err
    assert f"{env_file.stat().st_mode & 0o777:o}" == "600"


async def _start_and_stop(*args: str) -> tuple[str, str, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stt_agent",
        "server",
        *args,
        cwd=REPO,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 60)
    await asyncio.sleep(0.5)  # the env-file line follows the ready line
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return (first + out).decode(), err.decode(), proc.returncode or 0


def test_worker_command_without_settings_says_how_to_start_the_kits_server(tmp_path) -> None:
    result = run_cli("dev", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "python -m stt_agent server --dev" in line


# --- LiveKit's clients against the command's server ----------------------------------------


@pytest.mark.room_media
async def test_an_outside_client_joins_and_two_speakers_are_transcribed_under_their_names(
    local_stt,
) -> None:
    from stt_agent.room.rooms import mint_user_token, open_room

    voices = {"ada": "jfk", "grace": "librispeech_2412"}
    async with _cli_server() as server:
        settings = server.settings()
        handle = await stt_agent.start_agent(settings, agent_name="transcriber")
        caption_finals: list[stt_agent.CaptionFinal] = []
        handle.feed.subscribe(
            lambda e: caption_finals.append(e) if isinstance(e, stt_agent.CaptionFinal) else None
        )
        speakers: list[VirtualSpeaker] = []
        viewer = rtc.Room()
        finals: dict[str, list[str]] = {}  # transcribed track sid -> final texts
        owners: dict[str, str] = {}  # track sid -> identity, as the viewer saw them
        readers: list[asyncio.Task[None]] = []

        def on_stream(reader: rtc.TextStreamReader, sender: str) -> None:
            async def read() -> None:
                text = await reader.read_all()
                attributes = reader.info.attributes
                if attributes.get("lk.transcription_final") == "true" and text.strip():
                    finals.setdefault(attributes["lk.transcribed_track_id"], []).append(text)

            readers.append(asyncio.ensure_future(read()))

        viewer.register_text_stream_handler("lk.transcription", on_stream)
        viewer.on("track_published", lambda pub, p: owners.__setitem__(pub.sid, p.identity))

        def heard(identity: str) -> str:
            return " ".join(
                t for sid, who in owners.items() if who == identity for t in finals.get(sid, [])
            )

        try:
            await handle.wait_ready(timeout=JOIN_TIMEOUT_S)
            session = await open_room(settings, agent_name="transcriber", identity="viewer")
            # the third participant: a plain livekit.rtc client, as a frontend would be
            await asyncio.wait_for(viewer.connect(server.url, session.token), JOIN_TIMEOUT_S)
            for identity, clip in voices.items():
                speaker = VirtualSpeaker(samples.path(clip), identity=identity)
                speaker.source.trailing_silence_s = 2.0
                await speaker.join(
                    server.url, mint_user_token(settings, session.room, identity=identity)
                )
                speakers.append(speaker)
            await _wait_until(
                lambda: set(handle.status.participants) >= set(voices),
                JOIN_TIMEOUT_S,
                "a session per speaker",
            )
            await asyncio.gather(*(s.play() for s in speakers))  # both at once
            await _wait_until(
                lambda: all(heard(name) for name in voices),
                MEDIA_TIMEOUT_S,
                "the viewer to receive both speakers' transcriptions",
            )
            utterances = [u for u in handle.feed.utterances if u.final]
        finally:
            for speaker in speakers:
                await speaker.aclose()
            await viewer.disconnect()
            await handle.stop()
            for task in readers:
                task.cancel()

    for name, clip in voices.items():
        said = " ".join(u.text for u in utterances if u.participant == name)
        reference = [samples.info(clip).text]
        wer, shown = corpus_wer(reference, [said]), corpus_wer(reference, [heard(name)])
        print(f"{name} ({clip}): WER {wer:.1%} in the feed, {shown:.1%} at the viewer")
        assert wer <= SPEAKER_WER_LIMIT and shown <= SPEAKER_WER_LIMIT
        # Caption finals must not say a turn's words twice (a closing decode once repeated
        # "ask what you can do for your country" over the applause after it).
        for text in (said, heard(name)):
            assert _repeated_phrases(text) <= _repeated_phrases(reference[0]), text
        # Caption finals are on by default, and each reaches the room as a final segment.
        captioned = [c for c in caption_finals if c.participant == name]
        segments = [t for sid, who in owners.items() if who == name for t in finals.get(sid, [])]
        print(f"{name}: {len(captioned)} caption finals, {len(segments)} final segments")
        assert captioned and len(segments) >= len(captioned)
    log = "".join(server.stderr)
    for name in ("ada", "grace", "viewer"):
        assert f"{name} joined room {session.room}" in log
        assert f"{name} left room {session.room}" in log
    assert "ada published audio (microphone)" in log
    assert "eyJ" not in log and "Traceback" not in log  # no token, no traceback


def _repeated_phrases(text: str, n: int = 4) -> int:
    """How many n-word phrases occur more than once in `text` (case and punctuation aside)."""
    words = normalise(text).split()
    phrases = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(phrases) - len(set(phrases))


# --- robustness, on the test's loop ----------------------------------------------------------


@pytest.fixture
async def dev() -> AsyncIterator[stt_agent.DevServer]:
    server = stt_agent.DevServer(ping_interval_s=1, ping_timeout_s=2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _token(server: stt_agent.DevServer, identity: str, room: str = "r", secret: str = "") -> str:
    return (
        api.AccessToken(server.api_key, secret or server.keys.reveal_secret())
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )


async def _raw_join(
    http: aiohttp.ClientSession, server: stt_agent.DevServer, identity: str
) -> tuple[aiohttp.ClientWebSocketResponse, rtc_proto.JoinResponse]:
    """A participant that speaks the signalling protocol by hand and never does WebRTC."""
    ws = await http.ws_connect(
        f"{server.url}/rtc", params={"access_token": _token(server, identity)}
    )
    msg = await asyncio.wait_for(ws.receive(), JOIN_TIMEOUT_S)
    return ws, rtc_proto.SignalResponse.FromString(msg.data).join


async def test_a_participant_that_vanishes_is_removed_on_the_ping_timeout(dev, caplog) -> None:
    caplog.set_level(logging.INFO, logger="stt_agent.devserver")
    async with aiohttp.ClientSession() as http:
        silent, join = await _raw_join(http, dev, "silent")
        assert (join.ping_interval, join.ping_timeout) == (1, 2)
        watcher, _ = await _raw_join(http, dev, "watcher")
        gone = asyncio.Event()

        async def keep_pinging() -> None:
            while not gone.is_set():
                ping = rtc_proto.SignalRequest(ping_req=rtc_proto.Ping(timestamp=1))
                await watcher.send_bytes(ping.SerializeToString())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        msg = await watcher.receive()
                    update = rtc_proto.SignalResponse.FromString(msg.data).update
                    for p in update.participants:
                        if (
                            p.identity == "silent"
                            and p.state == models.ParticipantInfo.DISCONNECTED
                        ):
                            gone.set()

        pinger = asyncio.ensure_future(keep_pinging())
        try:
            await asyncio.wait_for(gone.wait(), 30)  # a hang guard; the timeout is 2 s
        finally:
            gone.set()
            await pinger
        assert set(dev.rooms.get("r").participants) == {"watcher"}
        # what the server had sent before, then its close: the silent one was disconnected
        ends = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        kinds = [(await asyncio.wait_for(silent.receive(), 10)).type]
        while kinds[-1] not in ends:
            kinds.append((await asyncio.wait_for(silent.receive(), 10)).type)
        assert kinds[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await watcher.close()
    assert any("silent left room r (no ping for 2 s)" in r.getMessage() for r in caplog.records)


async def test_garbage_and_bad_tokens_get_livekits_errors_and_no_traceback(dev, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = _token(dev, "eve", secret="not-the-secret-but-also-32-characters-long")
    async with aiohttp.ClientSession() as http:
        ws, _ = await _raw_join(http, dev, "mallory")
        await ws.send_bytes(b"\xff\x00 this is not a SignalRequest")
        closing = await asyncio.wait_for(ws.receive(), 10)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1003
        ws2, _ = await _raw_join(http, dev, "mallory2")
        await ws2.send_str("{not json")
        assert (await asyncio.wait_for(ws2.receive(), 10)).data == 1003

        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{dev.url}/rtc", params={"access_token": wrong})
        assert refused.value.status == 401
        async with http.get(f"{dev.http_url}/rtc/validate", params={"access_token": wrong}) as r:
            assert r.status == 401
            assert await r.text() == "invalid token: Signature verification failed"
        async with http.get(f"{dev.http_url}/rtc/validate", params={"access_token": "x.y"}) as r:
            assert (r.status, await r.text()) == (401, "invalid authorization token")
        rooms = f"{dev.http_url}/twirp/livekit.RoomService"
        protobuf = {"Content-Type": "application/protobuf"}
        async with http.post(f"{rooms}/ListRooms", data=b"\xff\xfe", headers=protobuf) as r:
            assert r.status == 400 and (await r.json())["code"] == "malformed"
        bearer = {"Authorization": f"Bearer {wrong}", "Content-Type": "application/json"}
        async with http.post(f"{rooms}/ListRooms", data=b"{}", headers=bearer) as r:
            assert r.status == 401 and (await r.json())["code"] == "unauthenticated"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{dev.url}/agent", headers={"Authorization": "Basic x"})

    # not even HTTP: one line, and a 400
    for garbage in (b"\x16\x03\x01 TLS \r\n\r\n", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", dev.port)
        writer.write(garbage)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")

    assert not [r for r in caplog.records if r.exc_info or r.stack_info]
    assert not any("Traceback" in r.getMessage() for r in caplog.records)
    assert not any(wrong in r.getMessage() for r in caplog.records)
    assert dev.keys.reveal_secret() not in caplog.text
    assert "mallory sent something that is not a SignalRequest" in caplog.text


async def test_rtc_validate_on_a_double_slash_path_answers_with_cors(dev) -> None:
    origin = "http://127.0.0.1:8888"
    good = _token(dev, "page")
    async with aiohttp.ClientSession() as http:
        for path in ("//rtc/validate", "/rtc/validate"):
            url = f"{dev.http_url}{path}"
            async with http.get(
                url, params={"access_token": good}, headers={"Origin": origin}
            ) as r:
                assert (r.status, await r.text()) == (200, "success")
                assert r.headers["Access-Control-Allow-Origin"] == origin
                assert r.headers["Server"].startswith("stt-agent-devserver")
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
        preflight["Access-Control-Request-Headers"] = "authorization,content-type"
        async with http.options(
            f"{dev.http_url}/twirp/livekit.RoomService/ListRooms", headers=preflight
        ) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == origin
            assert r.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
        # the websocket answers on `//rtc` too, as livekit-client in a browser opens it
        ws = await http.ws_connect(f"{dev.http_url}//rtc", params={"access_token": good})
        join = rtc_proto.SignalResponse.FromString((await ws.receive()).data).join
        assert join.participant.identity == "page" and join.room.name == "r"
        await ws.close()


async def test_python_api_returns_the_settings_for_the_server() -> None:
    server = stt_agent.DevServer()
    assert "not running" in repr(server)
    async with server as settings:
        assert settings.livekit_url == server.url and server.url.startswith("ws://127.0.0.1:")
        assert settings.livekit_api_key == server.api_key
        assert settings.livekit_api_secret.reveal() == server.keys.reveal_secret()
        assert server.keys.reveal_secret() not in repr(server) + repr(server.keys)
        result = await probe_livekit(settings)
        assert result.ok and "the kit's development server" in result.message
        assert await server.start() == settings  # already running: the same settings
    await server.stop()  # twice is fine
    with pytest.raises(ConfigError, match=r"not running"):
        server.settings()
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1 only"):
        stt_agent.DevServer("0.0.0.0", api_key="devkey", api_secret="secret")


async def test_an_empty_room_closes_on_its_empty_timeout(dev) -> None:
    secret = dev.keys.reveal_secret()
    async with api.LiveKitAPI(dev.http_url, dev.api_key, secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name="brief", empty_timeout=1))
        await lk.room.create_room(api.CreateRoomRequest(name="kept"))
        started = time.monotonic()
        while "brief" in dev.rooms.rooms:
            assert time.monotonic() - started < 30, "a hang guard"
            await asyncio.sleep(0.1)
        listed = await lk.room.list_rooms(api.ListRoomsRequest())
    assert [r.name for r in listed.rooms] == ["kept"]
    assert time.monotonic() - started >= 1.0  # not before its timeout


# --- bounded queues ------------------------------------------------------------------------


def _frame(i: int) -> AudioFrame:
    frame = AudioFrame.from_ndarray(np.full((1, 960), i, np.int16), format="s16", layout="mono")
    frame.sample_rate = 48_000
    return frame


async def test_a_slow_subscriber_loses_its_oldest_audio_not_memory() -> None:
    class _Publisher:
        identity = "ada"

    published = PublishedTrack(models.TrackInfo(sid="TR_x"), _Publisher(), None)  # type: ignore[arg-type]
    slow = published.subscribe()
    slow.push(_frame(7))  # before its sender reads: not kept, it would arrive late in a burst
    reading = asyncio.ensure_future(slow.recv())
    await asyncio.sleep(0)
    slow.push(_frame(1))
    assert int((await reading).to_ndarray()[0, 0]) == 1
    for i in range(SUBSCRIBER_QUEUE_FRAMES * 4):
        slow.push(_frame(i))
    assert slow.dropped == SUBSCRIBER_QUEUE_FRAMES * 3
    first = await slow.recv()
    assert int(first.to_ndarray()[0, 0]) == SUBSCRIBER_QUEUE_FRAMES * 3  # the newest second kept
    slow.push(None)  # the published track ended
    for _ in range(SUBSCRIBER_QUEUE_FRAMES - 1):
        await slow.recv()
    with pytest.raises(MediaStreamError):
        await slow.recv()


def test_data_for_a_channel_that_is_not_open_is_bounded() -> None:
    class _Closed:
        readyState = "connecting"

    channels = DataChannels("bob")
    channels._channels = {"_reliable": _Closed()}  # type: ignore[dict-item]
    for i in range(PENDING_PACKETS + 10):
        channels.send(models.DataPacket.RELIABLE, bytes([i % 256]))
    assert len(channels._pending["_reliable"]) == PENDING_PACKETS and channels.dropped == 10


async def test_with_only_loopback_up_start_says_so_in_one_line(monkeypatch, caplog) -> None:
    # measured (README): libwebrtc gathers no candidates on `lo`, so with nothing else up
    # LiveKit's clients cannot connect their peer connections
    import stt_agent.devserver.server as server_module

    caplog.set_level(logging.WARNING, logger="stt_agent.devserver")
    monkeypatch.setattr(server_module, "media_interfaces", lambda: [])
    async with stt_agent.DevServer():
        pass
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "only the loopback interface is up" in line and "local mode still works" in line
    caplog.clear()
    monkeypatch.setattr(server_module, "media_interfaces", lambda: ["eth0"])
    async with stt_agent.DevServer():
        pass
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
