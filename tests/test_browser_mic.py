"""The microphone widget in a real browser: headless Chromium with a fake microphone.

First the whole path (JupyterLab, a notebook, Run All, the recording's words in the
TranscriptView), then the browser half on its own (mic.js with a stand-in for the widget model,
served by Playwright): what reaches the kernel, how it is resampled, and the failure states.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from stt_agent import samples

pytest.register_assert_rewrite("tests.browser")  # it is a plugin too (below)
from tests.browser import (  # noqa: E402
    fake_microphone_args,
    open_notebook,
    run_all,
    run_cell,
    wait_for_kernel_idle,
    wait_for_text,
)

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.browser

RECORDING = samples.path("jfk")
MIC_JS = Path(__file__).resolve().parents[1] / "stt_agent" / "ui" / "mic.js"

CELLS = [
    "import stt_agent",
    "from stt_agent.ui.mic import MicWidget",
    "mic = MicWidget(autostart=True)\nmic",
    "handle = await stt_agent.start_local(mic)",
    "stt_agent.TranscriptView(handle.feed)",
]


def _read_pcm(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and rate of any file PyAV decodes."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(parts), rate


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    return _read_pcm(RECORDING)


@pytest.fixture
def fake_mic_wav(tmp_path: Path, speech: tuple[np.ndarray, int]) -> Path:
    # Chromium loops the file (its `%noloop` suffix repeats the last few ms forever instead,
    # which sounds like speech to a VAD): a pause before the repeat closes the last utterance.
    pcm, rate = speech
    return _write_wav(tmp_path / "fake-mic.wav", np.concatenate([pcm, np.zeros(2 * rate)]), rate)


@pytest.fixture
def chromium_args(fake_mic_wav: Path) -> list[str]:
    return fake_microphone_args(fake_mic_wav)


def test_notebook_transcribes_the_microphone(lab, lab_page, save_screenshot):
    started = time.monotonic()
    lab.write_notebook("mic_check.ipynb", CELLS)
    open_notebook(lab_page, "mic_check.ipynb")
    wait_for_kernel_idle(lab_page)
    run_all(lab_page)
    wait_for_text(lab_page, ".stt-mic", "recording", timeout=60)
    wait_for_text(lab_page, ".stt-row", "fellow americans", timeout=60)
    shot = save_screenshot(lab_page, "mic_transcript")
    assert lab_page.locator(".stt-mic-state").inner_text() == "recording"
    # Stopping from Python reaches the browser, and the session finishes.
    run_cell(lab_page, "mic.stop()\nawait handle.done()\nprint('state', handle.status.state)")
    wait_for_text(lab_page, ".stt-mic-state", "stopped", timeout=15)
    wait_for_text(lab_page, ".jp-OutputArea-output", "state finished", timeout=30)
    final = save_screenshot(lab_page, "mic_stopped")
    print(f"transcribed in JupyterLab in {time.monotonic() - started:.1f} s: {shot}, {final}")


# --- the browser half on its own ------------------------------------------------------------

SECURE_ORIGIN = "http://localhost:8765/"  # never contacted: Playwright answers for it
INSECURE_ORIGIN = "http://mic.invalid/"

HARNESS = """<!doctype html><meta charset="utf-8"><div id="view"></div>
<script type="module">
import widget from "./mic.js";
// Just enough of an anywidget model: attributes, change events, custom messages.
function fakeModel(attrs) {
  const handlers = new Map();
  const model = {
    attrs, events: [], chunks: [],
    get: (k) => attrs[k],
    set(k, v) {
      const old = attrs[k];
      attrs[k] = v;
      if (old !== v) for (const f of handlers.get("change:" + k) || []) f();
    },
    save_changes() {
      const last = model.events.filter((e) => e.startsWith("state:")).at(-1);
      if (last !== "state:" + attrs.state) model.events.push("state:" + attrs.state);
    },
    send(content, callbacks, buffers) {
      if (content.type !== "audio") return;
      for (const b of buffers) {
        model.chunks.push(new Int16Array(b));
        model.events.push("chunk:" + b.byteLength / 2);
      }
    },
    on(e, f) { handlers.set(e, [...(handlers.get(e) || []), f]); },
    off(e, f) { handlers.set(e, (handlers.get(e) || []).filter((g) => g !== f)); },
    emit(e, ...args) { for (const f of handlers.get(e) || []) f(...args); },
  };
  return model;
}
// anywidget gives initialize and every view a proxy object of their own.
const proxy = (m) => ({
  get: m.get, set: m.set.bind(m), save_changes: m.save_changes.bind(m), send: m.send.bind(m),
  on: m.on.bind(m), off: m.off.bind(m),
});
window.getUserMediaCalls = 0;
if (navigator.mediaDevices) {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => {
    window.getUserMediaCalls++;
    return getUserMedia(constraints);
  };
}
window.startMic = (attrs, views = 1) => {
  const model = fakeModel({
    state: "idle", message: "", level: 0, autostart: true, chunk_ms: 100,
    capture_rate: 16000, audio_processing: false, context_rate: 0, _instance: "mic-1", ...attrs,
  });
  widget.initialize({ model: proxy(model) });
  for (let i = 0; i < views; i++) {
    const el = document.createElement("div");
    document.getElementById("view").appendChild(el);
    widget.render({ model: proxy(model), el });
  }
  window.mic = model;
};
window.received = () => {
  const n = mic.chunks.reduce((a, c) => a + c.length, 0);
  const all = new Int16Array(n);
  let i = 0;
  for (const c of mic.chunks) { all.set(c, i); i += c.length; }
  return Array.from(all);
};
window.harnessReady = true;
</script>"""


def _harness(launch_chromium: Any, args: list[str], origin: str = SECURE_ORIGIN) -> Any:
    """A page at `origin` running mic.js against a stand-in model."""
    page = launch_chromium(*args).new_page()
    mic_js = MIC_JS.read_text()

    def serve(route: Any) -> None:
        if route.request.url.endswith("/mic.js"):
            route.fulfill(body=mic_js, content_type="text/javascript")
        else:
            route.fulfill(body=HARNESS, content_type="text/html")

    page.route(f"{origin}**", serve)
    page.goto(f"{origin}index.html")
    page.wait_for_function("window.harnessReady === true")
    return page


def _record(
    page: Any, seconds: float, views: int = 1, **attrs: Any
) -> tuple[np.ndarray, list[str], dict]:
    """Autostart, record `seconds`, then stop as the kernel would; samples, events, attributes."""
    page.evaluate("([attrs, views]) => startMic(attrs, views)", [attrs, views])
    page.wait_for_function("mic.attrs.state === 'recording'", timeout=10_000)
    chunks = round(seconds * 10)
    page.wait_for_function(f"mic.chunks.length >= {chunks}", timeout=(seconds + 10) * 1000)
    page.evaluate("mic.emit('msg:custom', {type: 'stop'})")
    page.wait_for_function("mic.attrs.state === 'stopped'", timeout=5_000)
    samples = np.array(page.evaluate("received()"), dtype=np.int16)
    return samples, page.evaluate("mic.events"), page.evaluate("mic.attrs")


def _best_match(received: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of `received` against the start of `reference`."""
    x = received.astype(np.float64)
    y = reference[: x.size + 16_000].astype(np.float64)
    n = 1 << int(np.ceil(np.log2(x.size + y.size)))
    xc = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)[: y.size - x.size // 2]
    lag = int(np.argmax(xc))
    seg = y[lag : lag + x.size]
    x = x[: seg.size]
    return float(seg @ x / np.sqrt((seg @ seg) * (x @ x)))


@pytest.mark.parametrize(
    "capture_rate", [16_000, 0], ids=["context-at-16k", "context-at-device-rate"]
)
def test_browser_sends_16k_pcm_of_what_the_microphone_hears(
    launch_chromium, fake_mic_wav, speech, capture_rate
):
    page = _harness(launch_chromium, fake_microphone_args(fake_mic_wav))
    samples, events, attrs = _record(page, 3.0, capture_rate=capture_rate)

    assert events[:2] == ["state:requesting", "state:recording"]  # state before any audio
    assert events[-1] == "state:stopped"  # after the last chunk: nothing said is lost
    sizes = [int(e.split(":")[1]) for e in events if e.startswith("chunk:")]
    assert all(size == 1600 for size in sizes[:-1]) and 0 < sizes[-1] <= 1600
    assert samples.size == sum(sizes) >= 30 * 1600
    if capture_rate:
        assert attrs["context_rate"] == capture_rate
    else:
        assert attrs["context_rate"] >= 16_000
    assert attrs["level"] == 0 and attrs["message"] == ""
    pcm, rate = speech
    assert rate == 16_000
    assert _best_match(samples[1600:], pcm) > 0.9  # the recording itself, at 16 kHz


def test_views_share_one_capture(launch_chromium, fake_mic_wav):
    """The widget shown twice records once, and the kernel's stop reaches that one capture."""
    page = _harness(launch_chromium, fake_microphone_args(fake_mic_wav))
    started = time.monotonic()
    samples, _, _ = _record(page, 1.0, views=2)
    elapsed = time.monotonic() - started
    assert page.evaluate("getUserMediaCalls") == 1
    assert samples.size <= (elapsed + 0.5) * 16_000  # one stream's worth, not two
    assert page.locator(".stt-mic-state").all_inner_texts() == ["stopped", "stopped"]
    assert page.locator(".stt-mic-button").all_inner_texts() == ["● Start", "● Start"]


def test_worklet_resampler_does_not_alias(launch_chromium, tmp_path):
    """At the device's rate the worklet resamples: 1 kHz passes, 12 kHz must not fold to 4 kHz."""
    rate = 48_000
    t = np.arange(4 * rate) / rate
    tones = 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 12_000 * t)
    wav = _write_wav(tmp_path / "tones.wav", np.round(tones * 32767), rate)
    page = _harness(launch_chromium, fake_microphone_args(wav))
    samples, _, attrs = _record(page, 2.0, capture_rate=0)
    if attrs["context_rate"] == 16_000:
        pytest.skip("this browser runs its AudioContext at 16 kHz anyway")
    x = samples[3200:].astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / 16_000)

    def power(f: float) -> float:
        return float(spectrum[(freqs > f - 50) & (freqs < f + 50)].max() ** 2)

    assert 10 * np.log10(power(4000) / power(1000)) < -30
    rms = np.sqrt(np.mean(x**2))
    assert 0.7 * 0.3 / np.sqrt(2) < rms < 1.3 * 0.3 / np.sqrt(2)  # the 1 kHz tone, intact


@pytest.mark.parametrize(
    ("args", "origin", "state", "says"),
    [
        pytest.param(
            ["--use-fake-device-for-media-stream"], SECURE_ORIGIN, "denied", "denied", id="denied"
        ),
        pytest.param(
            ["--use-fake-ui-for-media-stream", "--disable-audio-input"],
            SECURE_ORIGIN,
            "no-device",
            "No microphone",
            id="no-device",
        ),
        pytest.param(
            fake_microphone_args("unused.wav"),
            INSECURE_ORIGIN,
            "insecure",
            "secure context",
            id="insecure",
        ),
    ],
)
def test_browser_reports_why_it_cannot_record(launch_chromium, args, origin, state, says):
    # Without the fake-UI flag Playwright dismisses the permission prompt: a user saying no.
    page = _harness(launch_chromium, args, origin)
    page.evaluate("startMic({})")
    page.wait_for_function(f"mic.attrs.state === {state!r}", timeout=10_000)
    assert page.evaluate("mic.chunks.length") == 0
    message = page.evaluate("mic.attrs.message")
    assert says in message
    assert page.locator(".stt-mic-message").inner_text() == message  # shown in the widget too
    assert page.locator(".stt-mic-button").inner_text().endswith("Start")  # and it can retry
