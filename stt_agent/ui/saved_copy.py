"""A widget whose saved notebook shows its content where widgets cannot render.

Displaying a view shows the live widget and, right after it, a *saved copy*: a plain
text/html + text/plain output of what the view shows. Where the widget renders (JupyterLab
with its kernel) a rule in the widget's own HTML hides that copy; where it cannot (GitHub,
nbconvert, a course site, a notebook reopened without its kernel) the copy is what reads.

The copy has a display id and is brought up to date, with the widget state, after every
cell (IPython's `post_run_cell` event, which runs inside that cell): a headless run
(nbclient, nbconvert) records only messages from the cell that is running, so updates made
by the agent in the background would otherwise be lost and the saved notebook would say
"0 utterances". Only the hidden copy is re-rendered, never the live widget. In Colab, whose
outputs are separate frames that the rule cannot reach, the copy is left out.
"""

from __future__ import annotations

import uuid
import weakref
from typing import Any

import ipywidgets as widgets
from IPython import get_ipython
from IPython.display import display, update_display

from ..config import in_colab

__all__ = ["ReadableAfterwards"]


class ReadableAfterwards:
    """Mixin for an ipywidgets view: subclasses say what they show (`_fallback`), which of
    their widgets change (`_state_widgets`), call `_changed()` after each render and
    `_unwatch()` when closed."""

    _saved_class = ""  # the saved copy's CSS class
    _live_class = ""  # the live widget's CSS class
    _display_id: str | None = None
    _stale = False

    def _fallback(self) -> tuple[str, str]:
        """(text/plain, inner text/html) of what the view shows now."""
        raise NotImplementedError

    def _state_widgets(self) -> list[widgets.Widget]:
        """The widgets whose state changes while the view lives."""
        raise NotImplementedError

    def _hide_saved_copy_rule(self) -> str:
        """A style for the live widget's HTML: hides the saved copy next to a rendered view."""
        return (
            f"<style>.jp-OutputArea:has(.{self._live_class}) "
            f".jp-OutputArea-child:has(.{self._saved_class}) {{display:none}}</style>"
        )

    def _saved_copy(self) -> dict[str, str]:
        plain, inner = self._fallback()
        return {"text/plain": plain, "text/html": f"<div class='{self._saved_class}'>{inner}</div>"}

    def _ipython_display_(self) -> None:
        live = widgets.Widget._repr_mimebundle_(self)
        live["text/plain"] = f"{type(self).__name__} (a live widget; a saved copy follows)"
        # IPython.display's functions carry no annotations, hence the ignores on their calls.
        display(live, raw=True)  # type: ignore[no-untyped-call]  # unannotated IPython
        if in_colab():  # its outputs are separate frames the hiding rule cannot reach
            return
        if self._display_id is None:
            self._display_id = f"stt-agent-{uuid.uuid4().hex}"
        saved = self._saved_copy()
        display(saved, raw=True, display_id=self._display_id)  # type: ignore[no-untyped-call]  # unannotated IPython
        self._stale = False
        _watch(self)

    def _changed(self) -> None:
        self._stale = True

    def _unwatch(self) -> None:
        """Stop bringing the saved copy up to date (the view was closed)."""
        _shown.discard(self)

    def _bring_saved_output_up_to_date(self) -> None:
        if not self._stale or self._display_id is None:
            return
        self._stale = False
        for widget in self._state_widgets():
            if widget.comm is not None:
                widget.send_state()  # an unchanged value re-renders nothing in the browser
        saved = self._saved_copy()
        update_display(saved, raw=True, display_id=self._display_id)  # type: ignore[no-untyped-call]  # unannotated IPython


_shown: weakref.WeakSet[ReadableAfterwards] = weakref.WeakSet()
_hooked_shells: weakref.WeakSet[Any] = weakref.WeakSet()


def _watch(view: ReadableAfterwards) -> None:
    _shown.add(view)
    shell = get_ipython()
    if shell is not None and shell not in _hooked_shells:
        shell.events.register("post_run_cell", _after_cell)
        _hooked_shells.add(shell)


def _after_cell(*_: object) -> None:
    for view in list(_shown):
        try:
            view._bring_saved_output_up_to_date()
        except Exception:  # a closed comm, a kernel shutting down: never break the user's cell
            _shown.discard(view)
