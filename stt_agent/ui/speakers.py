"""Speaker names and colours, the same in every view of one feed.

Each participant gets a colour in order of appearance, kept per `TranscriptFeed`, so the
transcript, its summary line and the status view agree on who is who.
"""

from __future__ import annotations

import html
import weakref

from ..feed import TranscriptFeed

__all__ = ["speaker_colour", "speaker_label"]

# Readable on light and dark themes.
_SPEAKER_COLOURS = (
    "#0969da",
    "#8250df",
    "#bf3989",
    "#1a7f37",
    "#bc4c00",
    "#0a7b83",
    "#9a6700",
    "#cf222e",
)
_colours: weakref.WeakKeyDictionary[TranscriptFeed, dict[str, str]] = weakref.WeakKeyDictionary()


def speaker_colour(feed: TranscriptFeed, participant: str) -> str:
    """The colour of `participant` in every view of `feed` (the same in all of them)."""
    given = _colours.setdefault(feed, {})
    if participant not in given:
        given[participant] = _SPEAKER_COLOURS[len(given) % len(_SPEAKER_COLOURS)]
    return given[participant]


def speaker_label(feed: TranscriptFeed, participant: str) -> str:
    """`participant`'s name as HTML, bold in their colour."""
    colour = speaker_colour(feed, participant)
    return (
        f"<b class='stt-speaker' data-participant='{html.escape(participant, quote=True)}' "
        f"style='color:{colour}'>{html.escape(participant)}</b>"
    )
