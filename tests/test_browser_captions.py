"""Workshop in a box, as attendees live it: two browsers open the join link, type their names,
speak different recordings into fake microphones, and each page shows both speakers' captions
under the right names; the teacher's notebook feed has both.

The workshop (the kit's LiveKit server, the worker, the join service) runs on an event loop of
its own thread, as it would in the teacher's kernel; Chromium is driven by Playwright's sync
API from the test. The join link is HTTPS with the certificate made at start, on
$STT_AGENT_TEST_ADDRESS (a veth in the test network namespace) or 127.0.0.1; the browsers
accept that certificate as an attendee does once (`ignore_https_errors`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scoring import corpus_wer
from stt_agent import samples
from stt_agent.config import Settings

pytest.register_assert_rewrite("tests.browser", "tests.room_browser")
from tests.browser import VIEWPORT, console_tail, fake_microphone_args  # noqa: E402
from tests.room_browser import START_TIMEOUT_S, LoopThread, fake_microphone_wav  # noqa: E402

pytest_plugins = ["tests.browser", "tests.room_browser"]
pytestmark = [pytest.mark.browser, pytest.mark.browser_media]

UI = Path(__file__).resolve().parents[1] / "stt_agent" / "ui"
ATTENDEES = {"Ada": "jfk", "Grace": "librispeech_2412"}
# Per speaker, through the browser's audio processing, Opus and the local engine (tiny.en).
# Someone else's words, or none, score near 100 %.
SPEAKER_WER_LIMIT = 0.25
# A stretch of speech is over when its speaker has had no new final for this long.
PASS_GAP_S = 8.0
CAPTIONS_TIMEOUT_S = 180.0


@pytest.fixture
def workshop(kernel: LoopThread) -> Iterator[Any]:
    from stt_agent.room.workshop import open_workshop

    host = os.environ.get("STT_AGENT_TEST_ADDRESS", "127.0.0.1")
    # Settings() has no LIVEKIT_URL: the kit's own LiveKit server starts, on `host`
    opened = kernel.run(open_workshop(Settings(), host=host, secure=True))
    yield opened
    kernel.run(opened.close(), timeout=60)


def _finals(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        "[...captions.segments.values()].filter(s => s.final)"
        ".map(s => ({speaker: s.speaker, text: s.text, finalAt: s.finalAt}))"
    )


def _passes(finals: list[dict[str, Any]], speaker: str, now_ms: float) -> list[str]:
    """The speaker's finished stretches of speech (one per loop of the fake microphone)."""
    mine = sorted((f for f in finals if f["speaker"] == speaker), key=lambda f: f["finalAt"])
    passes: list[list[dict[str, Any]]] = []
    for final in mine:
        if passes and final["finalAt"] - passes[-1][-1]["finalAt"] < PASS_GAP_S * 1000:
            passes[-1].append(final)
        else:
            passes.append([final])
    done = [p for p in passes if now_ms - p[-1]["finalAt"] >= PASS_GAP_S * 1000]
    return [" ".join(f["text"] for f in p) for p in done]


def _best_wer(passes: list[str], clip: str) -> float:
    reference = samples.info(clip).text
    return min((corpus_wer([reference], [text]) for text in passes), default=1.0)


def _wait(what: str, check: Callable[[], bool], timeout: float, pages: list[Any]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    raise AssertionError(f"{what} within {timeout:.0f} s\n" + "\n".join(map(console_tail, pages)))


def test_two_attendees_see_each_others_captions_under_their_names(
    workshop, kernel, launch_chromium, tmp_path, save_screenshot
):
    import zxingcpp
    from PIL import Image

    # The QR code in the teacher's notebook is the link.
    qr_png = tmp_path / "join-link.png"
    workshop.qr.save(str(qr_png), scale=8)
    (decoded,) = zxingcpp.read_barcodes(Image.open(qr_png))
    assert decoded.text == workshop.link
    assert workshop.link.startswith("https://")

    pages: dict[str, Any] = {}
    for name, clip in ATTENDEES.items():
        browser = launch_chromium(*fake_microphone_args(fake_microphone_wav(tmp_path, clip)))
        # bypass_csp: Playwright evaluates its checks as strings, which the page's CSP forbids
        context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORT, bypass_csp=True)
        page = context.new_page()
        page.console_lines = []  # type: ignore[attr-defined]
        page.on("console", lambda m, p=page: p.console_lines.append(f"{m.type}: {m.text}"))
        page.goto(workshop.link)
        page.fill("#name", name)
        page.click("#join-button")
        page.wait_for_function("captions.mic === 'live'", timeout=START_TIMEOUT_S * 1000)
        assert page.locator("#you").inner_text() == name
        assert page.locator("#join").is_hidden()
        pages[name] = page

    # Each page: both speakers' captions, each under its own name, readable.
    def all_heard() -> bool:
        now = time.time() * 1000
        return all(
            _best_wer(_passes(_finals(page), name, now), clip) <= SPEAKER_WER_LIMIT
            for page in pages.values()
            for name, clip in ATTENDEES.items()
        )

    try:
        _wait(
            "both speakers' captions on both pages",
            all_heard,
            CAPTIONS_TIMEOUT_S,
            [*pages.values()],
        )
    finally:
        for name, page in pages.items():
            save_screenshot(page, f"captions-{name}", full_page=True)
    now = time.time() * 1000
    for viewer, page in pages.items():
        for name, clip in ATTENDEES.items():
            wer = _best_wer(_passes(_finals(page), name, now), clip)
            print(f"{viewer}'s page: {name} ({clip}) WER {wer:.1%}")
        shown = page.eval_on_selector_all(
            ".caption[data-final='true']", "els => els.map(e => e.dataset.speaker)"
        )
        assert set(shown) == set(ATTENDEES)  # no caption under anyone else's name
        you = page.locator(f".caption[data-speaker='{viewer}'] .speaker").first.inner_text()
        assert you == f"{viewer} (you)"
        assert page.locator("#people").inner_text() == "2 people"  # the agent is not counted

    # Muting keeps the track published but sends nothing (what a quiet attendee should do).
    ada = pages["Ada"]
    ada.click("#mute")
    ada.wait_for_function("captions.mic === 'muted'", timeout=10_000)
    assert ada.evaluate(
        "[...captions.room.localParticipant.audioTrackPublications.values()].every(p => p.isMuted)"
    )
    assert ada.locator("#mute").inner_text() == "Unmute"

    # The teacher's notebook: the same two speakers, under the same names.
    async def feed() -> dict[str, str]:
        heard: dict[str, list[str]] = {}
        for u in workshop.handle.feed.utterances:
            heard.setdefault(u.participant, []).append(u.text)
        return {who: " ".join(texts) for who, texts in heard.items()}

    by_speaker = kernel.run(feed())
    assert set(by_speaker) == set(ATTENDEES)
    for name, clip in ATTENDEES.items():
        reference = samples.info(clip).text
        assert samples.info(clip).text and by_speaker[name]
        # the feed holds every pass of the looping microphone: its words contain the clip's
        assert corpus_wer([reference], [by_speaker[name][: len(reference) * 3]]) < 1.0
    assert workshop.service.names == list(ATTENDEES)


@pytest.mark.parametrize(
    ("args", "state", "says"),
    [
        pytest.param(["--use-fake-device-for-media-stream"], "denied", "not allowed", id="denied"),
        pytest.param(
            ["--use-fake-ui-for-media-stream", "--disable-audio-input"],
            "no-device",
            "No microphone",
            id="no-device",
        ),
    ],
)
def test_the_page_says_why_there_is_no_microphone_and_still_shows_captions(
    kernel, launch_chromium, args, state, says
):
    from stt_agent.room.workshop import open_workshop

    # Without the fake-UI flag Playwright dismisses the permission prompt: a user saying no.
    workshop = kernel.run(open_workshop(Settings(), host="127.0.0.1"))
    try:
        page = launch_chromium(*args).new_page(viewport=VIEWPORT, bypass_csp=True)
        page.goto(workshop.link)
        page.fill("#name", "Ada")
        page.click("#join-button")
        page.wait_for_function(f"captions.mic === {state!r}", timeout=START_TIMEOUT_S * 1000)
        assert says in page.locator("#mic-message").inner_text()
        assert "still read the captions" in page.locator("#mic-message").inner_text()
        assert page.locator("#status").get_attribute("data-state") == "live"  # joined anyway
    finally:
        kernel.run(workshop.close(), timeout=60)


def test_an_insecure_page_says_so_before_anyone_joins(launch_chromium):
    # http on an address other than this machine's: no secure context, so no microphone
    page = launch_chromium().new_page(viewport=VIEWPORT)
    page.route(
        "http://captions.invalid/**",
        lambda route: route.fulfill(path=str(UI / route.request.url.split("captions.invalid/")[1])),
    )
    page.goto("http://captions.invalid/captions.html")
    page.wait_for_function("captions.mic === 'insecure'", timeout=30_000)
    assert "not a secure context" in page.locator("#mic-message").inner_text()


def test_the_page_in_a_notebook_output_captions_the_learners_microphone(
    kernel, launch_chromium, tmp_path, save_screenshot
):
    """`workshop.page(name)` as the notebook shows it: an iframe in a page on another port."""
    from aiohttp import web

    from stt_agent.room.workshop import open_workshop

    workshop = kernel.run(open_workshop(Settings(), host="127.0.0.1"))
    output = workshop.page("Ada")._repr_html_()

    async def serve() -> tuple[web.AppRunner, str]:
        async def notebook(_: web.Request) -> web.Response:
            return web.Response(text=output, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", notebook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"

    runner, url = kernel.run(serve())
    try:
        mic = fake_microphone_args(fake_microphone_wav(tmp_path, "librispeech_2412"))
        page = launch_chromium(*mic).new_page(viewport=VIEWPORT, bypass_csp=True)
        page.goto(url)
        frame = page.frame_locator("iframe")
        assert frame.locator("#name").input_value() == "Ada"
        frame.locator("#join-button").click()
        frame.locator(".caption[data-final='true'][data-speaker='Ada']").first.wait_for(
            timeout=CAPTIONS_TIMEOUT_S * 1000
        )
        assert frame.locator("#mic").inner_text() == "on"
        save_screenshot(page, "captions-in-notebook-output")
    finally:
        kernel.run(runner.cleanup())
        kernel.run(workshop.close(), timeout=60)
