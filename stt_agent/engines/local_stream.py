"""The local engine's stream: Silero VAD events in, turns, interims and finals out.

`LocalSTT` is a streaming STT plugin in the LiveKit sense: it takes 16 kHz frames, finds
utterances with Silero VAD, emits interim transcripts while someone speaks and one final
transcripts as the words become certain. What keeps it quick on a laptop's CPU:

* **one model, one decoder thread, many streams**: every stream of every session submits its
  decodes to the model's `BatchScheduler`, which runs them as CTranslate2 batches, turn ends
  first and interims round-robin (see `stt_agent.engines.batching`);
* **a short encoder window**: Whisper encodes 30 s windows; CTranslate2 accepts shorter ones,
  so the encoder sees the utterance plus a little padding (`decoding.Window`), and less when
  many streams' finals are decoded at once (`decoding.CROWDED_BATCH`);
* **speculative finals**: at the VAD's first quiet window (or after `speculate_after_s` of
  silence) the utterance is decoded; if the speaker stays quiet, that decode *is* the final
  (the caption final's and, when no words follow, the turn's), so waiting and decoding
  overlap;
* **caption finals, decoupled from turn ends**: once `caption_final_after_s` of silence
  confirms a pause and the speculative decode covers every word since the last final, those
  words go out as a FINAL_TRANSCRIPT at once, while the turn stays open (no END_OF_SPEECH).
  LiveKit's `AgentSession` (turn detection "stt") appends every final to the user's turn and
  completes the turn on END_OF_SPEECH, so handlers still get whole turns. A pause the speaker
  ended before its decode was done still gets its caption final when the decode is. The
  next words are decoded with *all* the utterance's audio and the caption finals' words as
  Whisper's forced prefix, so Whisper keeps its context (decoded alone, 0.4 s of applause
  after JFK's last words came out as "Thank you.") and only the new words come back;
* **end of turn when Whisper is sure**: Whisper's own probability that the words decoded so
  far end a sentence (the probability of a full stop, question or exclamation mark after
  them) is the end-of-turn confidence. A confident turn ends after `min_turn_silence_s`;
  otherwise the turn waits for the VAD's full silence (0.45 s), the way AssemblyAI's
  `min_turn_silence` / `max_turn_silence` work. The default threshold is high (0.95): read
  speech pauses 0.2-0.3 s at commas after words Whisper thinks end a sentence (0.9 after
  "...nothing of my antecedents,"), and a lower one cut such turns in the benchmark;
* **interims early, with little flicker**: decoded from `first_interim_after_s` of speech and
  then every `interim_interval_s` of audio (stretching to twice the recent decode time when
  the decoder is busy). The first decode is shown at once; after that, only words two
  successive decodes agree on (LocalAgreement-2). Measured on the shared clips: first words
  about 250 ms sooner than waiting for agreement from the start, for about one correction
  more per five utterances; showing every decode flickers in more than half of the updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from livekit import rtc
from livekit.agents import LanguageCode, stt, utils, vad
from livekit.agents.types import APIConnectOptions

from ..audio import SAMPLE_RATE
from ..progress import RunProgress, current_progress

# The stream's own short names for the package's decoding, model and utterance types.
from .decoding import INTERIM_WINDOW, Decoded
from .decoding import TRAILING_PUNCTUATION as _TRAILING_PUNCTUATION
from .decoding import decode_async as _decode_async
from .heard_utterance import HeardUtterance as _Utterance
from .weights import LoadedModel as _LoadedModel

if TYPE_CHECKING:
    from .local_stt import LocalSTT

__all__ = ["LocalSpeechStream"]

logger = logging.getLogger("stt_agent.engines")

_stream_ids = itertools.count()
# Whisper cannot see past 30 s: a monologue is cut at its next pause after this long, and
# regardless once the window is nearly full.
_LONG_UTTERANCE_S = 20.0
_MAX_UTTERANCE_S = 27.0


def _words(text: str) -> list[str]:
    return text.split()


def _has_words(text: str) -> bool:
    return re.search(r"\w", text) is not None


def _same(a: str, b: str) -> bool:
    return re.sub(r"[^\w']", "", a.lower()) == re.sub(r"[^\w']", "", b.lower())


class _Wake:
    """A decode finished: look again at the utterance (its turn may be over)."""


class LocalSpeechStream(stt.RecognizeStream):
    def __init__(self, owner: LocalSTT, *, conn_options: APIConnectOptions, language: str | None):
        super().__init__(stt=owner, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._owner = owner
        self._language = language
        self._id = next(_stream_ids)
        # (absolute end sample, wall clock) of recent frames: maps audio time to when it arrived.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=3000)
        self._samples_in = 0
        # Created inside the run's session, so this is the run's record (a private one elsewhere).
        self._progress = current_progress.get(None) or RunProgress()
        # How long interim decodes take from asking to answer, queueing included (moving
        # average): the interim cadence follows it, so busy decoders get asked less.
        self._interim_latency_s = 0.0
        self._work: asyncio.Queue[vad.VADEvent | _Wake | None] = asyncio.Queue()
        self._last_speech_end = 0  # absolute sample where the last turn's speech ended

    def _report(self, *, heard: int, unfinished: _Utterance | None, decoding: bool) -> None:
        """Tell the run how far the VAD has got and what is recognised for good."""
        p = self._progress
        p.heard = max(p.heard, heard)
        done_upto = p.heard if unfinished is None else unfinished.first_sample
        p.recognised = max(p.recognised, done_upto)
        p.speech_open = unfinished is not None
        p.queued_decodes = 1 if decoding else 0
        p.touch(recogniser=True)

    def _ahead_of_real_time(self) -> bool:
        if not self._arrivals:
            return False
        first_end, first_wall = self._arrivals[0]
        last_end, last_wall = self._arrivals[-1]
        audio_s = (last_end - first_end) / SAMPLE_RATE
        return audio_s - (last_wall - first_wall) > 1.0

    def _wall_time_at(self, sample: int) -> float:
        for end, wall in self._arrivals:
            if end >= sample:
                return wall - (end - sample) / SAMPLE_RATE
        return time.time()

    async def _run(self) -> None:
        loaded, vad_model = await asyncio.to_thread(self._owner._loaded)
        vad_stream = vad_model.stream()
        opts = getattr(vad_model, "_opts", None)
        activation = getattr(opts, "activation_threshold", 0.5)
        deactivation = getattr(opts, "deactivation_threshold", 0.35)
        padding_n = int(getattr(opts, "prefix_padding_duration", 0.4) * SAMPLE_RATE)
        # The last `padding_n` samples the VAD has scored: the lead-in of an utterance that
        # we open ourselves (when a turn ended early and the speaker goes on).
        recent: deque[np.ndarray] = deque()
        recent_n = 0

        async def forward_input() -> None:
            async for item in self._input_ch:
                # A flush marks a segment boundary for cloud STTs; the VAD finds our own
                # boundaries, and flushing it would reset its state mid-word.
                if isinstance(item, self._FlushSentinel):
                    continue
                self._samples_in += item.samples_per_channel
                self._arrivals.append((self._samples_in, time.time()))
                vad_stream.push_frame(item)
            vad_stream.end_input()

        async def forward_vad() -> None:
            async for ev in vad_stream:
                self._work.put_nowait(ev)
            self._work.put_nowait(None)

        tasks = [
            asyncio.create_task(forward_input(), name="LocalSTT.forward_input"),
            asyncio.create_task(forward_vad(), name="LocalSTT.forward_vad"),
        ]
        current: _Utterance | None = None
        heard = 0
        try:
            while (ev := await self._work.get()) is not None:
                if isinstance(ev, _Wake):
                    if current is not None and self._turn_over(current):
                        await self._end_turn(loaded, current, heard)
                        current = None
                    elif current is not None:
                        self._maybe_caption(current)
                    continue
                heard = ev.samples_index
                if ev.type == vad.VADEventType.START_OF_SPEECH:
                    if current is None:
                        pcm = _frames_pcm(ev.frames)
                        current = self._open(ev.samples_index - pcm.size, pcm)
                elif ev.type == vad.VADEventType.INFERENCE_DONE:
                    pcm = _frames_pcm(ev.frames)
                    if current is None:
                        # The VAD still hears one long stretch of speech but the last turn
                        # ended early (or ran too long): speech again opens the next one.
                        if ev.speaking and ev.probability >= activation:
                            lead = np.concatenate([*recent, pcm]) if recent else pcm
                            # ...but not the words the last turn already has.
                            first = max(ev.samples_index - lead.size, self._last_speech_end)
                            lead = lead[lead.size - (ev.samples_index - first) :]
                            current = self._open(first, lead)
                    else:
                        current.append(
                            pcm, speechy=ev.probability > deactivation, window_s=pcm.size / 16e3
                        )
                        self._maybe_speculate(loaded, current)
                        self._maybe_interim(loaded, current)
                        if self._turn_over(current) or self._too_long(current):
                            await self._end_turn(loaded, current, heard)
                            current = None
                        else:
                            self._maybe_caption(current)
                    recent.append(pcm)
                    recent_n += pcm.size
                    while recent and recent_n - recent[0].size >= padding_n:
                        recent_n -= recent.popleft().size
                elif ev.type == vad.VADEventType.END_OF_SPEECH and current is not None:
                    await self._end_turn(loaded, current, heard)
                    current = None
                self._report(heard=heard, unfinished=current, decoding=False)
            if current is not None:  # input ended mid-utterance
                await self._end_turn(loaded, current, heard)
        finally:
            for task in tasks:
                await utils.aio.cancel_and_wait(task)
            await vad_stream.aclose()
            loaded.scheduler.forget(self._id)

    def _open(self, first_sample: int, pcm: np.ndarray) -> _Utterance:
        self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
        return _Utterance(first_sample, pcm)

    async def _end_turn(self, loaded: _LoadedModel, u: _Utterance, heard: int) -> None:
        # While this decodes the VAD's events wait, so `heard` stops and the source waits
        # too: that is the backpressure that keeps memory flat.
        self._report(heard=heard, unfinished=u, decoding=True)
        await self._finalise(loaded, u)
        self._last_speech_end = u.first_sample + u.speech_n

    # --- when a turn ends -----------------------------------------------------------------

    def _realtime(self) -> bool:
        return not self._ahead_of_real_time()

    def _turn_over(self, u: _Utterance) -> bool:
        """Early end: enough silence, and Whisper is confident the sentence is over."""
        owner = self._owner
        if u.silence_s < owner._min_turn_silence_s or not self._realtime():
            return False
        decoded = u.speculated()
        return (
            decoded is not None
            and bool(decoded.text)
            and decoded.end_confidence >= owner._end_of_turn_confidence
        )

    def _too_long(self, u: _Utterance) -> bool:
        seconds = u.n / SAMPLE_RATE
        return seconds >= _MAX_UTTERANCE_S or (seconds >= _LONG_UTTERANCE_S and u.silence_s > 0)

    async def _decode_final(
        self,
        loaded: _LoadedModel,
        audio: np.ndarray,
        *,
        prefix: str,
        end_confidence: bool = False,
    ) -> Decoded:
        """A final's decode (beam search), the speculative one or the one at the turn's end."""
        return await _decode_async(
            loaded,
            audio,
            beam_size=self._owner._beam_size,
            language=self._language,
            stream=self._id,
            end_confidence=end_confidence,
            prefix=prefix,
        )

    def _maybe_speculate(self, loaded: _LoadedModel, u: _Utterance) -> None:
        if u.speculation is not None and u.speculation[0] < u.speech_n:
            # The speaker went on: that decode is no final for the turn. If they paused long
            # enough for a caption final, it still is the caption of the words before the
            # pause; otherwise it is stale.
            end, future = u.speculation
            u.speculation = None
            if self._caption_pause(u) and end >= u.pause_at and u.pending_caption is None:
                u.pending_caption = (u.pause_at, future)
            else:
                future.cancel()
        if u.silence_s == 0 or u.silence_s < self._owner._speculate_after_s:
            return  # still speaking (0 asks at the first quiet window)
        if u.pending_caption is not None:
            return  # (a new decode's prefix needs the pending caption's words)
        if u.speculation is not None and u.speculation[0] >= u.speech_n:
            return  # already decoding everything said so far
        if not self._realtime():
            return  # nobody waits for this final: decode once, when the VAD ends the turn
        end = u.final_end()
        future = asyncio.ensure_future(
            self._decode_final(loaded, u.audio(end), prefix=u.final_text, end_confidence=True)
        )
        future.add_done_callback(lambda _: self._work.put_nowait(_Wake()))
        u.speculation = (end, future)

    def _caption_pause(self, u: _Utterance) -> bool:
        """The pause the speaker just ended was long enough for a caption final."""
        after = self._owner._caption_final_after_s
        return after is not None and u.pause_s >= after and u.pause_at > u.finalised_n

    def _maybe_caption(self, u: _Utterance) -> None:
        """A caption final: the pause is long enough and the speculative decode covers every
        word since the last one (or covered them when the speaker went on). The turn goes on
        (no END_OF_SPEECH): LiveKit's session adds each final to the user's turn until the
        turn ends."""
        if u.pending_caption is not None:
            upto, future = u.pending_caption
            if not future.done():
                return  # its _Wake looks again
            u.pending_caption = None
            if not future.cancelled() and future.exception() is None:
                self._caption(u, future.result(), upto)
        after = self._owner._caption_final_after_s
        if after is None or u.silence_s < after or not u.unfinalised:
            return
        decoded = u.speculated()
        if decoded is not None:  # else still decoding: its _Wake looks again
            self._caption(u, decoded, u.speech_n)

    def _caption(self, u: _Utterance, decoded: Decoded, upto: int) -> None:
        logger.debug("caption final %s up to %.2f s: %r", u.id, upto / SAMPLE_RATE, decoded.text)
        self._send_final(u, decoded, upto)
        u.captioned(decoded.text, upto)

    def _maybe_interim(self, loaded: _LoadedModel, u: _Utterance) -> None:
        owner = self._owner
        if u.interim_busy or u.silence_s > 0 or not self._realtime():
            return
        if loaded.scheduler.urgent_waiting:
            return  # someone's turn is ending: finals first
        if u.interim_at_n == 0:
            due = u.n - u.opened_n >= owner._first_interim_after_s * SAMPLE_RATE
        else:
            interval = max(owner._interim_interval_s, 2 * self._interim_latency_s)
            due = u.n - u.interim_at_n >= interval * SAMPLE_RATE
        if not due:
            return
        u.interim_at_n = u.n
        u.interim_busy = True
        asked = time.monotonic()
        future = asyncio.ensure_future(
            _decode_async(
                loaded,
                u.audio(),
                beam_size=1,
                language=self._language,
                stream=self._id,
                urgent=False,
                window=INTERIM_WINDOW,
                prefix=u.final_text,
            )
        )
        captions = u.captions
        future.add_done_callback(lambda f: self._on_interim(u, f, asked, captions))

    def _on_interim(
        self, u: _Utterance, future: asyncio.Future[Decoded], asked: float, captions: int
    ) -> None:
        u.interim_busy = False
        if future.cancelled() or future.exception() is not None:
            return
        if captions != u.captions:
            return  # asked before a caption final: it holds words that are final now
        took = time.monotonic() - asked
        self._interim_latency_s = (
            took if not self._interim_latency_s else (0.7 * self._interim_latency_s + 0.3 * took)
        )
        decoded = future.result()
        words = _words(decoded.text)
        previous, u.last_words = u.last_words, words
        logger.debug(
            "interim %s: %.2f s of audio, %.0f ms: %r",
            u.id,
            u.interim_at_n / SAMPLE_RATE,
            took * 1000,
            decoded.text,
        )
        if u.finished or u.speculation is not None:
            return
        policy = self._owner._interim_policy
        if policy == "every" or (policy == "eager" and not u.shown):
            previous = words  # shown as it comes
        if previous is None:
            return
        # LocalAgreement-2: show what the last two decodes agree on. Shown words stay while
        # new decodes keep to them; two decodes that agree on something else replace them
        # (an early "Thank you" must not stick until the final).
        agreed = 0
        while agreed < min(len(previous), len(words)) and _same(previous[agreed], words[agreed]):
            agreed += 1
        candidate = words[:agreed]
        consistent = all(_same(a, b) for a, b in zip(candidate, u.shown, strict=False))
        if len(candidate) <= len(u.shown) if consistent else len(candidate) < len(u.shown):
            return
        u.shown = candidate
        text = _TRAILING_PUNCTUATION.sub("", " ".join(u.shown))
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                request_id=u.id,
                alternatives=[self._speech_data(u, text, decoded.language, upto=u.n)],
            )
        )

    async def _finalise(self, loaded: _LoadedModel, u: _Utterance) -> None:
        if u.pending_caption is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(u.pending_caption[1])
            self._maybe_caption(u)
        if u.unfinalised:
            end = u.final_end()
            decoded = None
            spec = u.speculation
            if spec is not None and spec[0] >= u.speech_n and not spec[1].cancelled():
                # It covers every word: wait for it rather than start again.
                with contextlib.suppress(Exception):
                    decoded = await asyncio.shield(spec[1])
            if decoded is None:
                decoded = await self._decode_final(loaded, u.audio(end), prefix=u.final_text)
            logger.debug(
                "final %s: %.0f ms of silence, end of sentence %.2f: %r",
                u.id,
                u.silence_s * 1000,
                decoded.end_confidence,
                decoded.text,
            )
            self._send_final(u, decoded, u.speech_n)
        # else every word is in a caption final already: the turn just ends
        u.finished = True
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.END_OF_SPEECH,
                speech_end_time=self._wall_time_at(u.first_sample + u.speech_n),
            )
        )

    def _send_final(self, u: _Utterance, decoded: Decoded, upto: int) -> None:
        """The final transcript of the words since the last one (a caption final, or the
        turn's last words): from `u.segment_start` to `upto`, the end of their speech. A lone
        full stop (Whisper closing the sentence of an earlier caption final) is no final."""
        if not _has_words(decoded.text):
            return
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                request_id=u.id,
                alternatives=[self._speech_data(u, decoded.text, decoded.language, upto=upto)],
                speech_end_time=self._wall_time_at(u.first_sample + upto),
            )
        )
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=u.id,
                recognition_usage=stt.RecognitionUsage(
                    audio_duration=(u.final_end() - u.segment_start) / SAMPLE_RATE
                ),
            )
        )

    def _speech_data(self, u: _Utterance, text: str, lang: str, *, upto: int) -> stt.SpeechData:
        return stt.SpeechData(
            language=LanguageCode(lang),
            text=text,
            start_time=(u.first_sample + u.segment_start) / SAMPLE_RATE,
            end_time=(u.first_sample + upto) / SAMPLE_RATE,
            confidence=1.0,
        )


def _frames_pcm(frames: list[rtc.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, np.int16)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
