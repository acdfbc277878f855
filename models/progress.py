"""Progress of long loops (backfill days, training epochs, bench steps): done / total, rows per
second and an estimate of the time left, logged after every step. (In models/ so that the training
ranks can use it too: models never import jobs.)

    progress = Progress(log, "backfill", total=len(dates), unit="dates")
    for day in dates:
        ...
        progress.step(rows=rows_of_the_day, what=str(day))

Steps of different cost (backfill's dates with and without the model stages) are told apart by
`kinds`, the kind of every step in order: the time left is each remaining step at the mean time of
the steps of its kind done so far, and the steps of a kind not yet timed are named, not guessed.
"""
from __future__ import annotations

import collections
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
                 clock=time.monotonic, kinds: list[str] | None = None):
        if kinds is not None and len(kinds) != total:
            raise ValueError(f"progress {label}: {len(kinds)} kinds for {total} {unit}")
        self.log, self.label, self.total, self.unit, self.clock = log, label, total, unit, clock
        self.kinds = list(kinds) if kinds is not None else [""] * total  # one kind: the mean pace of all
        self.done, self.rows = 0, 0
        self.started = self.last = clock()
        self.spent: dict[str, list[float]] = collections.defaultdict(list)  # kind -> seconds of each step done

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float | None:
        """Seconds left (None before the first step): each remaining step at the mean time of the
        steps of its kind done so far; the kinds not timed yet count nothing (see untimed())."""
        if self.done == 0:
            return None
        return sum(sum(self.spent[k]) / len(self.spent[k]) for k in self.kinds[self.done:] if self.spent[k])

    def untimed(self) -> dict[str, int]:
        """The remaining steps by kind, for the kinds none of whose steps is done yet."""
        return dict(collections.Counter(k for k in self.kinds[self.done:] if not self.spent[k]))

    def line(self, what: str = "", now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self.started
        parts = [f"{self.label}: {self.done}/{self.total} {self.unit}"]
        if what:
            parts[0] += f" ({what})"
        if self.rows:
            parts.append(f"{self.rows:,} rows, {self.rows / elapsed if elapsed > 0 else 0:,.0f} rows/s")
        parts.append(f"{duration(elapsed)} elapsed")
        left = self.left()
        if left is not None and self.done < self.total:
            untimed = [f"{n} {kind} {self.unit} not timed yet" for kind, n in self.untimed().items()]
            timed = [f"about {duration(left)} left"] if left or not untimed else []
            parts.append(" + ".join(timed + untimed))
        return ", ".join(parts)

    def step(self, rows: int = 0, what: str = "") -> str:
        now = self.clock()
        self.spent[self.kinds[self.done]].append(now - self.last)
        self.last = now
        self.done += 1
        self.rows += int(rows or 0)
        text = self.line(what, now)
        self.log.info("%s", text)
        return text
