"""The simulator's messages as AssemblyAI's v3 streaming API shapes them, and the audio it takes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from aiohttp import web

from .recogniser import Word

__all__ = [
    "SAMPLE_RATE",
    "STABLE_TAIL_S",
    "formatted",
    "invalid_query",
    "ms",
    "mulaw_to_int16",
    "send_error",
    "turn_words",
]

SAMPLE_RATE = 16_000  # the rate the VAD and the recogniser work at
STABLE_TAIL_S = 0.4  # in a partial, words ending this close to the live edge are not final yet


def turn_words(
    raw: Sequence[Word], start: int, duration: float, final: bool
) -> list[dict[str, Any]]:
    """The recogniser's words as the service sends them (ms from stream start), each with its
    `formatted` text alongside for the formatted copy of a final turn."""
    words = []
    for word in raw:
        shown = str(word[0]).strip()
        text = _unformatted(shown)
        if not text:
            continue
        begin, end = max(float(word[1]), 0.0), max(float(word[2]), float(word[1]), 0.0)
        words.append(
            {
                "text": text,
                "start": ms(start) + round(begin * 1000),
                "end": ms(start) + round(end * 1000),
                "confidence": round(float(word[3]), 3) if len(word) > 3 else 1.0,
                "word_is_final": final or end <= duration - STABLE_TAIL_S,
                "formatted": shown,
            }
        )
    return words


def _unformatted(text: str) -> str:
    """Unformatted turns are lower case without punctuation (apostrophes, hyphens kept)."""
    return re.sub(r"[^\w'-]", "", text.lower()).strip("'-")


def formatted(texts: Iterable[str]) -> str:
    """A formatted turn: the recogniser's own punctuation and casing, as one sentence or more
    that starts with a capital and ends with a full stop (or ? or !)."""
    text = " ".join(t for t in texts if t).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    text = text.rstrip(",;:-– ")
    return text if text[-1] in ".?!" else text + "."


def ms(samples: int) -> int:
    return round(samples * 1000 / SAMPLE_RATE)


def invalid_query(query: Mapping[str, str]) -> str | None:
    """The connection parameters the simulator needs; anything else is recorded, not checked."""
    rate = query.get("sample_rate", "")
    if not rate.isdigit() or int(rate) <= 0:
        return f"Invalid sample_rate: {rate!r}"
    if query.get("encoding", "pcm_s16le") not in ("pcm_s16le", "pcm_mulaw"):
        return f"Invalid encoding: {query.get('encoding')!r}"
    return None


async def send_error(ws: web.WebSocketResponse, code: int, message: str) -> None:
    """The documented error path: an Error frame, then a close with the same code."""
    await ws.send_json({"type": "Error", "error_code": code, "error": message})
    await ws.close(code=code, message=message.encode()[:123])


def mulaw_to_int16(data: bytes) -> np.ndarray:
    """G.711 μ-law to linear 16-bit PCM."""
    u = ~np.frombuffer(data, dtype=np.uint8)
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    magnitude = ((((u & 0x0F).astype(np.int32)) << 3) + 0x84) << exponent
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)
