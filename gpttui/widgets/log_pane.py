"""The engine's stderr (its human log), bounded."""

from __future__ import annotations

from textual.widgets import Log

MAX_LINES = 1000


class LogPane(Log):
    can_focus = False

    def __init__(self, **kw) -> None:
        super().__init__(max_lines=MAX_LINES, **kw)
