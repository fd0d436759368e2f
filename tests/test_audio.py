"""Audio sources: every format PyAV decodes becomes 20 ms frames of 16 kHz mono; arrays of any
common shape and rate do too; bad input fails with a message naming the file and the problem;
long files stream in constant memory; `SourceAudioInput` ends (or fails) the way a session needs.

The format variants are made here, at test time, from a shipped sample (written out as WAV) with
PyAV itself, so no ffmpeg binary and no extra fixtures are needed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import threading
import time
import tracemalloc
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice import io

from stt_agent.audio import (
    FRAME_MS,
    SAMPLE_RATE,
    ArraySource,
    AudioSource,
    AudioSourceError,
    FileSource,
    as_source,
    probe,
)
from stt_agent.audio_input import SourceAudioInput
from stt_agent.progress import MAX_UNHEARD_S, RunProgress

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "speech"  # when present
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def pcm_of(frames: list[rtc.AudioFrame]) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


async def collect(source: AudioSource) -> list[rtc.AudioFrame]:
    return [frame async for frame in source.frames()]


def best_correlation(reference: np.ndarray, decoded: np.ndarray, seconds: float = 5.0) -> float:
    """Normalised cross-correlation of the first seconds, at the best lag within ±0.15 s.

    Codecs add a delay of their own (AAC's 1024 priming samples, for one), so the peak is
    searched for rather than read at lag 0.
    """
    n = int(seconds * SAMPLE_RATE)
    max_lag = int(0.15 * SAMPLE_RATE)
    a = reference[:n].astype(np.float64)
    b = decoded[: n + max_lag].astype(np.float64)
    size = 1 << (a.size + b.size).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate([corr[-max_lag:], corr[: max_lag + 1]])
    return float(lags.max() / (np.linalg.norm(a) * np.linalg.norm(b[:n]) + 1e-9))


# --- format variants ----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    container: str
    codec: str
    rate: int
    layout: str
    lossless: bool
    options: tuple[tuple[str, str], ...] = ()


VARIANTS = {
    "flac": Variant("flac", "flac", 16_000, "mono", lossless=True),
    "mp3": Variant("mp3", "libmp3lame", 16_000, "mono", lossless=False),
    "opus.ogg": Variant("ogg", "libopus", 48_000, "mono", lossless=False),
    "m4a": Variant("mp4", "aac", 16_000, "mono", lossless=False),
    "webm": Variant("webm", "libopus", 48_000, "mono", lossless=False),
    "44k1-stereo.wav": Variant("wav", "pcm_s16le", 44_100, "stereo", lossless=True),
    "8k.wav": Variant("wav", "pcm_s16le", 8_000, "mono", lossless=True),
    # FFmpeg's own Vorbis encoder is marked experimental; libvorbis is rarely in PyAV wheels.
    "vorbis-48k-stereo.ogg": Variant(
        "ogg", "vorbis", 48_000, "stereo", lossless=False, options=(("strict", "experimental"),)
    ),
}


def encode(src: Path, dst: Path, v: Variant) -> None:
    """Re-encode `src` with PyAV; the encoder resamples and re-frames as its codec needs."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=v.container) as out:
        stream = out.add_stream(v.codec, rate=v.rate, layout=v.layout)
        if v.options:
            stream.codec_context.options = dict(v.options)
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout=v.layout, rate=v.rate
        )
        for frame in inp.decode(audio=0):
            frame.pts = None
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def jfk_wav(sample_wav) -> Path:
    return sample_wav("jfk")


@pytest.fixture(scope="session")
def variants(tmp_path_factory: pytest.TempPathFactory, jfk_wav: Path) -> dict[str, Path | None]:
    folder = tmp_path_factory.mktemp("variants")
    made: dict[str, Path | None] = {}
    for name, v in VARIANTS.items():
        if not _has_encoder(v.codec):
            made[name] = None
            continue
        made[name] = folder / f"jfk.{name}"
        encode(jfk_wav, made[name], v)
    return made


@pytest.fixture(scope="session")
def jfk_pcm(jfk_wav: Path) -> np.ndarray:
    return read_wav(jfk_wav)


# Measured with this PyAV 18 / FFmpeg build: FLAC and the WAVs 0.9999-1.0, MP3 0.996, Opus
# 0.999, AAC 0.99999 (at a 1024-sample lag), Vorbis 0.9999. The thresholds leave room for other
# encoder versions but still fail on wrong channel handling, wrong rate or garbled audio (< 0.3).
LOSSLESS_MIN_CORR = 0.99
LOSSY_MIN_CORR = 0.9


@pytest.mark.parametrize("name", list(VARIANTS))
async def test_every_format_becomes_16k_mono_20ms_frames(
    name: str, variants: dict[str, Path | None], jfk_pcm: np.ndarray
) -> None:
    path = variants[name]
    if path is None:
        pytest.skip(f"this FFmpeg build has no {VARIANTS[name].codec} encoder")
    spec = VARIANTS[name]

    info = probe(path)
    assert info.sample_rate == spec.rate
    assert info.channels == (2 if spec.layout == "stereo" else 1)

    source = FileSource(path)
    frames = await collect(source)
    for frame in frames:
        assert frame.sample_rate == SAMPLE_RATE
        assert frame.num_channels == 1
        assert frame.samples_per_channel == FRAME_SAMPLES
        assert len(frame.data) == FRAME_SAMPLES
    pcm = pcm_of(frames)
    assert source.finished
    assert source.samples_sent == pcm.size

    expected_s = jfk_pcm.size / SAMPLE_RATE + source.trailing_silence_s
    assert abs(pcm.size / SAMPLE_RATE - expected_s) <= 0.15
    silence = int(source.trailing_silence_s * SAMPLE_RATE)
    assert not pcm[-silence:].any(), "the trailing silence is not silent"

    corr = best_correlation(jfk_pcm, pcm)
    assert corr > (LOSSLESS_MIN_CORR if spec.lossless else LOSSY_MIN_CORR), corr


@pytest.mark.parametrize("path", sorted(SPEECH.glob("*.wav")), ids=lambda p: p.stem)
async def test_shared_recordings_decode_whole_and_exact(path: Path) -> None:
    """Intact WAVs must never be mistaken for truncated ones, and 16 kHz PCM passes unchanged."""
    original = read_wav(path)
    source = FileSource(path, trailing_silence_s=0)
    pcm = pcm_of(await collect(source))
    assert source.info.duration_s == pytest.approx(original.size / SAMPLE_RATE, abs=0.001)
    assert pcm.size == -(-original.size // FRAME_SAMPLES) * FRAME_SAMPLES  # padded to a frame
    np.testing.assert_array_equal(pcm[: original.size], original)


async def test_wav_with_unknown_length_is_not_called_truncated(
    tmp_path: Path, jfk_wav: Path
) -> None:
    # Streaming writers put 0xFFFFFFFF in the size fields when they do not know it yet.
    data = bytearray(jfk_wav.read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    path = tmp_path / "streamed.wav"
    path.write_bytes(data)
    pcm = pcm_of(await collect(FileSource(path, trailing_silence_s=0)))
    assert pcm.size >= read_wav(jfk_wav).size


# --- pacing -------------------------------------------------------------------------------


async def test_realtime_pacing_follows_the_audio_clock() -> None:
    """A source paces through `stt_agent.pacing.Pacer` (whose timing is tested on a simulated
    clock in test_pacing.py); here, that a real source uses it: not paced unless asked, and
    when asked, no frame leaves before its own time in the audio. Only lower bounds on wall
    time are asserted: a busy machine can make a run slower, never faster."""
    one_second = (np.sin(np.arange(SAMPLE_RATE) / 5) * 0.3).astype(np.float32)

    fast = ArraySource(one_second, trailing_silence_s=0)
    assert len(await collect(fast)) == SAMPLE_RATE // FRAME_SAMPLES
    assert not fast.realtime and fast.wall_time_of(0.5) is None

    # 10 ms more than a second: the last frame is a padded one and must be paced as well.
    paced = ArraySource(
        np.concatenate([one_second, one_second[:160]]), realtime=True, trailing_silence_s=0
    )
    arrivals = []
    async for _ in paced.frames():
        arrivals.append(time.time())
    assert len(arrivals) == SAMPLE_RATE // FRAME_SAMPLES + 1
    assert paced.first_frame_at is not None
    # No frame is handed on before its own time in the audio, the last one included.
    for i, at in enumerate(arrivals):
        assert at - paced.first_frame_at >= i * FRAME_MS / 1000 - 0.005, i
    assert paced.wall_time_of(1.0) == pytest.approx(paced.first_frame_at + 1.0)


# --- arrays -------------------------------------------------------------------------------


def tone(freq: float, seconds: float, rate: int = SAMPLE_RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(pcm: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[spectrum.argmax()])


async def test_float_array_is_scaled_and_framed() -> None:
    samples = tone(440, 0.5)
    source = ArraySource(samples, trailing_silence_s=0.1)
    frames = await collect(source)
    assert all(f.samples_per_channel == FRAME_SAMPLES and f.sample_rate == 16_000 for f in frames)
    assert len(frames) == -(-(samples.size + 1600) // FRAME_SAMPLES)
    pcm = pcm_of(frames)
    np.testing.assert_allclose(pcm[: samples.size], samples * 32767, atol=1.0)


def test_float_array_out_of_range_is_clipped() -> None:
    pcm = ArraySource(np.array([2.0, -3.0, 0.5]))._pcm
    assert pcm.tolist() == [32767, -32767, 16383]


async def test_int16_array_passes_through() -> None:
    samples = (tone(300, 0.5) * 32767).astype(np.int16)
    pcm = pcm_of(await collect(ArraySource(samples, trailing_silence_s=0)))
    np.testing.assert_allclose(pcm[: samples.size], samples, atol=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("layout", ["(n, 2)", "(2, n)"])
async def test_stereo_arrays_are_mixed_down(dtype: type, layout: str) -> None:
    left = tone(440, 0.5, amp=0.6)
    right = tone(440, 0.5, amp=0.2)
    if dtype is np.int16:
        left, right = (left * 32767).astype(np.int16), (right * 32767).astype(np.int16)
    stereo = np.stack([left, right], axis=1 if layout == "(n, 2)" else 0).astype(dtype)
    pcm = pcm_of(await collect(ArraySource(stereo, trailing_silence_s=0)))
    expected = tone(440, 0.5, amp=0.4) * 32767  # the mean of the two channels
    np.testing.assert_allclose(pcm[: left.size], expected, atol=4)


async def test_44k1_array_is_resampled() -> None:
    samples = tone(440, 2.0, rate=44_100)
    pcm = pcm_of(await collect(ArraySource(samples, 44_100, trailing_silence_s=0)))
    # 2 s at 44.1 kHz is 32000 samples at 16 kHz (plus the padding of the last frame)
    assert 32_000 - FRAME_SAMPLES <= pcm.size <= 32_000 + FRAME_SAMPLES
    assert dominant_hz(pcm[:32_000]) == pytest.approx(440, abs=2)
    assert np.abs(pcm[1000:31_000]).max() == pytest.approx(0.5 * 32767, rel=0.05)


@pytest.mark.parametrize(
    ("samples", "says"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((0, 2), np.int16), "empty"),
        (np.zeros((10, 2, 2), np.float32), "1-D or 2-D"),
        (np.zeros(100, np.int32), "int32"),
        (np.zeros(100, np.uint8), "uint8"),
        (np.zeros(100, np.complex64), "complex64"),
        (np.array(["a", "b"]), "expected float or int16"),
    ],
    ids=["empty", "empty-stereo", "3d", "int32", "uint8", "complex", "strings"],
)
def test_bad_arrays_are_refused(samples: np.ndarray, says: str) -> None:
    with pytest.raises(AudioSourceError, match=says) as caught:
        ArraySource(samples, name="my-array")
    assert caught.value.source == "my-array"
    assert str(caught.value).startswith("my-array: ")


# --- as_source ----------------------------------------------------------------------------


def test_as_source_accepts_paths_arrays_and_sources(jfk_wav: Path) -> None:
    by_str = as_source(str(jfk_wav))
    by_path = as_source(jfk_wav, realtime=True)
    assert isinstance(by_str, FileSource) and isinstance(by_path, FileSource)
    assert by_path.realtime and not by_str.realtime
    array = as_source(np.zeros(1600, np.float32))
    assert isinstance(array, ArraySource)
    assert as_source(array) is array

    class Custom:
        name = "custom"

        async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
            return
            yield

    custom = Custom()
    assert as_source(custom) is custom


@pytest.mark.parametrize("thing", [42, b"RIFF....", [0.0, 0.1], None])
def test_as_source_refuses_other_types(thing: object) -> None:
    with pytest.raises(TypeError, match=r"cannot use .* as audio"):
        as_source(thing)


# --- bad files ----------------------------------------------------------------------------


def _missing(tmp: Path) -> Path:
    return tmp / "nowhere.wav"


def _folder(tmp: Path) -> Path:
    (tmp / "recordings.wav").mkdir()
    return tmp / "recordings.wav"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.wav").write_bytes(b"")
    return tmp / "empty.wav"


def _text(tmp: Path) -> Path:
    (tmp / "notes.wav").write_text("meeting notes, not a recording\n" * 50)
    return tmp / "notes.wav"


def _random_mp3(tmp: Path) -> Path:
    (tmp / "noise.mp3").write_bytes(np.random.default_rng(7).bytes(64_000))
    return tmp / "noise.mp3"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_missing, "no such file"),
        (_folder, "is a folder"),
        (_empty, "empty"),
        (_text, "not a readable audio file"),
        (_random_mp3, "not a readable audio file"),
    ],
    ids=["missing", "folder", "empty", "text-as-wav", "random-bytes-mp3"],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, make: object, says: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    for attempt in (probe, FileSource, as_source):
        with pytest.raises(AudioSourceError) as caught:
            attempt(path)
        assert caught.value.source == str(path)
        assert str(path) in str(caught.value)
        assert says in caught.value.problem


# (offset, struct format) of fields in the 44-byte header `wave` writes
_WAV_FIELDS = {"channels": (22, "<H"), "sample rate": (24, "<I"), "bits per sample": (34, "<H")}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("bits per sample", 65535, "no decoder knows"),
        ("sample rate", 1, "sample rate of 1 Hz, which no recording has"),
        ("sample rate", 2_000_000, "sample rate of 2000000 Hz"),
        ("channels", 0, "0 audio channels"),
        ("channels", 65535, "audio channels, which no recording has"),
    ],
)
def test_headers_no_recording_has_are_refused_before_decoding(
    tmp_path: Path, jfk_wav: Path, field: str, value: int, says: str
) -> None:
    """FFmpeg opens these and believes them (1 Hz makes 350 KB into 49 hours of "audio")."""
    offset, fmt = _WAV_FIELDS[field]
    data = bytearray(jfk_wav.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path = tmp_path / "damaged.wav"
    path.write_bytes(bytes(data))
    for attempt in (probe, FileSource, as_source):
        with pytest.raises(AudioSourceError) as caught:
            attempt(path)
        assert caught.value.source == str(path)
        assert says in caught.value.problem, caught.value.problem


def test_a_length_the_bytes_cannot_hold_is_refused(tmp_path: Path) -> None:
    """A FLAC whose STREAMINFO claims 2^36 - 1 samples (1193 hours) in a few KB."""
    path = tmp_path / "endless.flac"
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, SAMPLE_RATE), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    packed = int.from_bytes(data[18:26], "big") | ((1 << 36) - 1)  # total samples: all ones
    data[18:26] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(AudioSourceError) as caught:
        probe(path)
    assert "hours of audio in" in caught.value.problem, caught.value.problem


async def test_damage_met_mid_file_is_one_error_after_the_audio_before_it(
    tmp_path: Path, jfk_wav: Path
) -> None:
    """A FLAC that is noise from the middle on: the first half is handed on, then one
    `AudioSourceError` says where decoding stopped (no PyAV exception escapes)."""
    path = tmp_path / "damaged_middle.flac"
    with av.open(str(jfk_wav)) as src, av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        for frame in src.decode(audio=0):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + np.random.default_rng(7).bytes(len(data) - middle))
    source = FileSource(path, trailing_silence_s=0)
    frames: list[rtc.AudioFrame] = []
    with pytest.raises(AudioSourceError) as caught:
        async for frame in source.frames():
            frames.append(frame)
    assert caught.value.source == str(path)
    assert "decoding failed after" in caught.value.problem or "truncated" in caught.value.problem
    assert len(frames) * FRAME_MS / 1000 >= 3.0  # the intact first part came through


@pytest.fixture
def truncated_wav(tmp_path: Path, jfk_wav: Path) -> Path:
    path = tmp_path / "cut_off.wav"
    shutil.copy(jfk_wav, path)
    with path.open("r+b") as f:
        f.truncate(int(jfk_wav.stat().st_size * 0.4))
    return path


async def test_truncated_wav_fails_after_its_audio(truncated_wav: Path) -> None:
    # The header is intact, so construction succeeds; the cut is found once decoding runs out
    # early, after the audio that is there has been handed on.
    source = FileSource(truncated_wav)
    assert source.info.header_duration_s == pytest.approx(11.0)
    frames: list[rtc.AudioFrame] = []
    with pytest.raises(AudioSourceError) as caught:
        async for frame in source.frames():
            frames.append(frame)
    err = caught.value
    assert err.source == str(truncated_wav)
    assert "truncated" in err.problem
    assert "11.0 s" in err.problem
    assert len(frames) * FRAME_MS / 1000 == pytest.approx(0.4 * 11.0, abs=0.3)
    assert not source.finished


# --- memory -------------------------------------------------------------------------------

LONG_MINUTES = 20


@pytest.fixture(scope="session")
def long_flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 minutes of a quiet 440 Hz tone, encoded at FLAC's fastest setting (under a second)."""
    path = tmp_path_factory.mktemp("long") / "twenty_minutes.flac"
    block = (tone(440, 10.0, amp=0.03) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        stream.codec_context.options = {"compression_level": "0"}
        for _ in range(LONG_MINUTES * 6):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_long_file_is_streamed_not_loaded(long_flac: Path) -> None:
    decoded_bytes = LONG_MINUTES * 60 * SAMPLE_RATE * 2  # 38.4 MB of int16 if held whole
    source = FileSource(long_flac, trailing_silence_s=0)

    # RSS sees FFmpeg's buffers too; tracemalloc sees every NumPy array precisely.
    baseline = _rss_bytes()
    rss_peak = baseline
    stop = threading.Event()

    def sample_rss() -> None:
        nonlocal rss_peak
        while not stop.is_set():
            rss_peak = max(rss_peak, _rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    tracemalloc.start()
    try:
        n = 0
        async for frame in source.frames():
            n += frame.samples_per_channel
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stop.set()
        sampler.join()

    assert n == LONG_MINUTES * 60 * SAMPLE_RATE
    assert traced_peak < 10_000_000, f"{traced_peak / 1e6:.1f} MB traced"
    assert traced_peak < decoded_bytes / 4
    assert rss_peak - baseline < 20_000_000, f"RSS grew {(rss_peak - baseline) / 1e6:.1f} MB"


# --- SourceAudioInput ---------------------------------------------------------------------


class _KeepingUp(RunProgress):
    """A progress record whose "recogniser" hears every sample the moment it is fed."""

    def touch(self, *, recogniser: bool = False) -> None:
        self.at_stt = self.heard = self.recognised = self.fed
        super().touch(recogniser=recogniser)


async def test_source_audio_input_yields_then_finishes() -> None:
    source = ArraySource(tone(440, 0.5), name="beep", trailing_silence_s=0)
    progress = _KeepingUp()
    audio_input = SourceAudioInput(source, progress)
    assert isinstance(audio_input, io.AudioInput)
    assert "beep" in audio_input.label
    frames = [frame async for frame in audio_input]
    assert len(frames) == 25  # no speech left open: no listening tail
    assert progress.source_done and progress.fed == 25 * FRAME_SAMPLES
    assert audio_input.error is None
    with pytest.raises(StopAsyncIteration):
        await audio_input.__anext__()


async def test_source_audio_input_waits_for_the_recogniser() -> None:
    """Backpressure: a recogniser that hears nothing gets at most MAX_UNHEARD_S of audio."""
    progress = RunProgress()  # nobody reports hearing anything
    audio_input = SourceAudioInput(ArraySource(tone(440, 30.0)), progress)
    reader = asyncio.create_task(audio_input.__anext__())
    await reader
    for _ in range(400):  # as many frames as it will give without the recogniser
        step = asyncio.ensure_future(audio_input.__anext__())
        await asyncio.sleep(0)
        if not step.done():
            await asyncio.sleep(0.01)
        if not step.done():
            step.cancel()
            break
    assert progress.fed <= MAX_UNHEARD_S * SAMPLE_RATE
    assert progress.peak_backlog <= MAX_UNHEARD_S * SAMPLE_RATE
    assert not progress.source_done


class _Unplugged:
    """A live source whose device goes away after a few frames."""

    name = "usb-mic"

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        for _ in range(3):
            yield rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME_SAMPLES)
        raise OSError("device unplugged")


async def test_source_audio_input_records_a_source_error() -> None:
    progress = _KeepingUp()
    audio_input = SourceAudioInput(_Unplugged(), progress)
    frames = [frame async for frame in audio_input]  # ends quietly, for the session's sake
    assert len(frames) == 3
    assert progress.source_done
    assert isinstance(audio_input.error, OSError)
    assert "unplugged" in str(audio_input.error)


async def test_source_audio_input_reports_a_truncated_file(truncated_wav: Path) -> None:
    audio_input = SourceAudioInput(FileSource(truncated_wav), _KeepingUp())
    frames = [frame async for frame in audio_input]
    assert frames
    assert isinstance(audio_input.error, AudioSourceError)
    assert "truncated" in str(audio_input.error)


async def test_source_audio_input_lets_cancellation_through() -> None:
    # The session cancels its reading task when it closes: that must stay a cancellation,
    # not turn into an "error" of the source or a normal end of the task.
    audio_input = SourceAudioInput(ArraySource(tone(440, 5.0), realtime=True), _KeepingUp())
    got = 0

    async def read() -> None:
        nonlocal got
        async for _ in audio_input:
            got += 1

    task = asyncio.create_task(read())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < got < 250
    assert audio_input.error is None
