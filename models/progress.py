"""Progress of long loops (backfill days, training epochs, bench steps): done / total, rows per
second and an estimate of the time left, logged after every step. (In models/ so that the training
ranks can use it too: models never import jobs.)

    progress = Progress(log, "backfill", total=len(dates), unit="dates")
    for day in dates:
        ...
        progress.step(rows=rows_of_the_day, what=str(day))
"""
from __future__ import annotations

import logging
import time


def duration(seconds: float) -> str:
    """3s, 2m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    def __init__(self, log: logging.Logger, label: str, total: int, unit: str = "steps",
                 clock=time.monotonic):
        self.log, self.label, self.total, self.unit, self.clock = log, label, total, unit, clock
        self.done, self.rows = 0, 0
        self.started = clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self, elapsed: float | None = None) -> float | None:
        """Seconds left at the mean pace so far (None before the first step)."""
        if self.done == 0:
            return None
        return (self.elapsed if elapsed is None else elapsed) / self.done * (self.total - self.done)

    def line(self, what: str = "") -> str:
        elapsed = self.elapsed
        parts = [f"{self.label}: {self.done}/{self.total} {self.unit}"]
        if what:
            parts[0] += f" ({what})"
        if self.rows:
            parts.append(f"{self.rows:,} rows, {self.rows / elapsed if elapsed > 0 else 0:,.0f} rows/s")
        parts.append(f"{duration(elapsed)} elapsed")
        left = self.left(elapsed)
        if left is not None and self.done < self.total:
            parts.append(f"about {duration(left)} left")
        return ", ".join(parts)

    def step(self, rows: int = 0, what: str = "") -> str:
        self.done += 1
        self.rows += int(rows or 0)
        text = self.line(what)
        self.log.info("%s", text)
        return text
