"""A progress bar for long commands, on a stream (stderr), redrawn at most every few tenths of a second."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """``[#####-----]  50%  5,000/10,000 events``; silent when the stream is not a terminal."""

    def __init__(self, stream: TextIO, total: int, *, label: str = "events", width: int = 30) -> None:
        self._stream, self._total, self._label, self._width = stream, max(total, 0), label, width
        self._done, self._drawn_at = 0, 0.0
        self._live = bool(getattr(stream, "isatty", lambda: False)())

    def advance(self, count: int) -> None:
        """Count ``count`` more items done."""
        self._done += count
        now = time.monotonic()
        if now - self._drawn_at >= 0.2:  # noqa: PLR2004 - redraw interval in seconds
            self._draw()
            self._drawn_at = now

    def _draw(self) -> None:
        if not self._live:
            return
        share = min(1.0, self._done / self._total) if self._total else 1.0
        filled = int(share * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\r[{bar}] {share:4.0%}  {self._done:,}/{self._total:,} {self._label}")
        self._stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        self._draw()
        if self._live:
            self._stream.write("\n")
            self._stream.flush()
