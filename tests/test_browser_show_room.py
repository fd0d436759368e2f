"""`show_room`'s page (LiveKit's room page bundled in the `livekit` wheel) in a real browser:
it joins the kit's LiveKit server from headless Chromium with a fake microphone, and the
worker in the "kernel" transcribes the spoken sentence under the page's participant identity.

The page is the exact HTML `show_room` puts in a notebook (`livekit.rtc.jupyter.room_html`,
an iframe whose `srcdoc` holds LiveKit's page), served from 127.0.0.1 as JupyterLab serves it:
a secure context, and in the loopback address space, so Chromium's local-network-access
checks let it reach the server on 127.0.0.1 (a page Playwright made up would be "public").
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from benchmarks.scoring import corpus_wer
from stt_agent import samples
from stt_agent.config import Settings

pytest.register_assert_rewrite("tests.browser", "tests.room_browser")
from tests.browser import VIEWPORT, console_tail, fake_microphone_args  # noqa: E402
from tests.room_browser import LoopThread, fake_microphone_wav  # noqa: E402

pytest_plugins = ["tests.browser", "tests.room_browser"]
pytestmark = [pytest.mark.browser, pytest.mark.browser_media]

CLIP = "librispeech_2412"
AGENT = "show-room-test"
WER_LIMIT = 0.25  # through the browser, Opus and tiny.en; measured 0 % on this clip
TIMEOUT_S = 180.0
REFERENCE = samples.info(CLIP).text


@pytest.fixture
def room(kernel: LoopThread) -> Iterator[tuple[Any, Any]]:
    """The kit's LiveKit server, a worker registered on it, and a room for the learner."""
    from stt_agent.devserver import DevServer
    from stt_agent.room.rooms import open_room
    from stt_agent.room.worker import start_agent

    server = DevServer()

    async def start() -> tuple[Any, Any]:
        settings = server.settings(Settings()) if await server.start() else None
        assert settings is not None
        handle = await start_agent(settings, agent_name=AGENT)
        await handle.wait_ready()
        return handle, await open_room(settings, agent_name=AGENT, identity="learner")

    handle, session = kernel.run(start())
    yield handle, session

    async def stop() -> None:
        await handle.stop()
        await server.stop()

    kernel.run(stop(), timeout=60)


async def _serve(body: str) -> tuple[web.AppRunner, str]:
    """The notebook's output as JupyterLab would serve it: a page on 127.0.0.1."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/"


def test_show_rooms_page_is_transcribed_under_its_identity(
    room, kernel, launch_chromium, tmp_path, save_screenshot
):
    from livekit.rtc.jupyter import room_html

    handle, session = room
    page_html = room_html(session.livekit_url, session.token, width="100%", height="110px").data
    runner, url = kernel.run(_serve(page_html))
    browser = launch_chromium(*fake_microphone_args(fake_microphone_wav(tmp_path, CLIP)))
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.console_lines = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    try:
        page.goto(url)
        # LiveKit's page joins at once and leaves the microphone to the learner: one click
        room_page = page.frame_locator("iframe")
        room_page.locator(".connection-state", has_text=re.compile("^connected$")).wait_for(
            timeout=60_000
        )
        microphone = room_page.locator("button[data-lk-source='microphone']")
        microphone.click()
        room_page.locator("button[data-lk-source='microphone'][data-lk-enabled='true']").wait_for(
            timeout=30_000
        )
        by_speaker = _wait_for_words(kernel, handle, session.identity)
        save_screenshot(page, "show_room")
    finally:
        kernel.run(runner.cleanup())
    said = by_speaker.get(session.identity, "")
    wer = corpus_wer([REFERENCE], [said]) if said else 1.0
    print(f"show_room page heard as {session.identity!r}: {said!r}, WER {wer:.1%}")
    assert set(by_speaker) == {session.identity}, console_tail(page)
    assert wer <= WER_LIMIT, console_tail(page)


def _wait_for_words(kernel: LoopThread, handle: Any, identity: str) -> dict[str, str]:
    """What the notebook's feed holds by speaker, once `identity` said the sentence (or timeout)."""

    async def heard() -> dict[str, str]:
        texts: dict[str, list[str]] = {}
        for u in handle.feed.utterances:
            texts.setdefault(u.participant, []).append(u.text)
        return {who: " ".join(t) for who, t in texts.items()}

    deadline = time.monotonic() + TIMEOUT_S
    while True:
        by_speaker = kernel.run(heard())
        said = by_speaker.get(identity, "")
        if (said and corpus_wer([REFERENCE], [said]) <= WER_LIMIT) or time.monotonic() > deadline:
            return by_speaker
        time.sleep(1.0)
