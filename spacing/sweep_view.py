"""A sweep you can watch: its cells done, running, failed and skipped, the time it has run and the time left.

Two places show it, both from the cells' files alone, so they see the same whichever process or
machine trains a cell: the launching process of a multirun, beside its jobs (started by
:class:`spacing.sweep_callback.SweepCallback`; basic and local launchers, and a SLURM launch that
waits for its array), and ``spacing status --watch`` (:mod:`spacing.status`) for an array submitted
with ``spacing submit``. On a terminal the view is one live bar (tqdm); anywhere else (a SLURM log,
CI, a file) it writes a plain line when cells have finished.

The time left assumes the rest trains at the rate seen since the first cell started (composing the
grid and waiting in a queue are not training), with training counted in cells: a cell that has
recorded k of its n epochs counts k / n, a finished one 1. A fused group's cells thus advance
together, and cells skipped because they had completed before cost no time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from spacing.contract import COMPLETED, DIVERGED, FAILED, RUNNING
from spacing.record import read_result
from spacing.sweep_state import SKIPPED, read_launch_outcome

QUEUED = "queued"
"""A cell of the launch whose job has not started yet."""
UNFINISHED = (RUNNING, QUEUED, "new", "unfinished")
"""States of a cell still to train; every other state (outcome) is a finished cell."""
WAITING = (QUEUED, "new")
"""States of a cell no process has started (in this launch)."""
FINISHED_ORDER = (COMPLETED, SKIPPED, FAILED, DIVERGED)
"""The order in which finished outcomes are shown; any other outcome follows them."""
LINE_EVERY_S = 10.0
"""Off a terminal, the launch's view writes a line at most this often (and only when cells have finished)."""
CELLS_READ_PER_S = 200
"""The view reads each cell's two small files at most this many cells a second (a big sweep on a shared
file system is read less often than once a second)."""


@dataclass(frozen=True)
class Tally:
    """The cells of a sweep counted by state (or outcome) at one moment, and how much of their training is done."""

    counts: dict[str, int]
    done: float
    """Training done, in cells: each unfinished cell counts the fraction of its epochs recorded, a finished one 1."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.counts.items() if state not in UNFINISHED)

    def text(self, always: Sequence[str], elapsed: float, left: float | None) -> str:
        """E.g. ``14/70 cells done (14 completed, 0 skipped, 0 failed), 7 running, 49 queued; 0:42 elapsed, 2:01 left``.

        The finished outcomes in `always` are shown even at 0; any other state only when some cell has it.
        """
        shown = dict.fromkeys(always, 0) | {s: n for s, n in self.counts.items() if s not in UNFINISHED}
        order = sorted(shown, key=lambda s: FINISHED_ORDER.index(s) if s in FINISHED_ORDER else len(FINISHED_ORDER))
        finished = ", ".join(f"{shown[state]} {state}" for state in order)
        waiting = "".join(f", {self.counts[s]} {s}" for s in UNFINISHED if self.counts.get(s))
        times = f"{clock(elapsed)} elapsed"
        if self.finished < self.total:
            times += f", {clock(left)} left" if left is not None else ", time left not known yet"
        return f"{self.finished}/{self.total} cells done ({finished}){waiting}; {times}"


def trained_fraction(cell_dir: Path) -> float:
    """How much of its training the cell in `cell_dir` has recorded: 1 when completed, else epochs done / epochs."""
    record = read_result(cell_dir) or {}
    if record.get("status") == COMPLETED:
        return 1.0
    epochs = record.get("epochs") or 0
    return min(1.0, (record.get("epochs_completed") or 0) / epochs) if epochs else 0.0


def tally_of(states: Iterable[tuple[Path, str]]) -> Tally:
    """The tally of cells given as (dir, state): a finished cell counts 1, an unfinished one its trained fraction."""
    counts: dict[str, int] = {}
    done = 0.0
    for cell_dir, state in states:
        counts[state] = counts.get(state, 0) + 1
        done += trained_fraction(cell_dir) if state in UNFINISHED else 1.0
    return Tally(counts, done)


def launch_tally(cells: Sequence[Path], launch: str) -> Tally:
    """The cells of launch `launch`: each by the outcome its marker gives for this launch (running, or how its job
    ended), ``queued`` while its job has not started."""

    def state(cell_dir: Path) -> str:
        marker = read_launch_outcome(cell_dir, launch)
        return str(marker.get("outcome")) if marker is not None else QUEUED

    return tally_of((cell_dir, state(cell_dir)) for cell_dir in cells)


class Clock:
    """The time since `since` (a Unix time; default now), and the time left at the rate of training seen since this
    clock was made, when `done` cells' worth of training had been done."""

    def __init__(self, done: float, since: float | None = None, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.started = now()
        self.since = self.started if since is None else since
        self.start_done = done

    def restart(self, done: float) -> None:
        """Measure the rate from now on, when `done` cells' worth of training has been done."""
        self.started = self.now()
        self.start_done = done

    def elapsed(self) -> float:
        return self.now() - self.since

    def left(self, tally: Tally) -> float | None:
        """Seconds left: the training still to do over the rate seen since the clock started; None before any progress."""
        progress = tally.done - self.start_done
        seconds = self.now() - self.started
        if progress <= 0 or seconds <= 0:
            return None
        return max(0.0, tally.total - tally.done) * seconds / progress


def clock(seconds: float | None) -> str:
    """`seconds` as ``m:ss`` or ``h:mm:ss``."""
    whole = int(round(seconds or 0))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class SweepView:
    """Shows the tallies `tally` returns: a live bar on a terminal, else a line at most every `line_every_s`: the
    first one, then one whenever more cells have finished. :meth:`update` shows the current tally; :meth:`start`
    does so every `poll_s` seconds (default: once a second, less often for a sweep of many cells) in a thread of
    its own until :meth:`stop`."""

    def __init__(
        self,
        tally: Callable[[], Tally],
        always: Sequence[str],
        since: float | None = None,
        stream: IO[str] | None = None,
        line_every_s: float = LINE_EVERY_S,
        poll_s: float | None = None,
    ) -> None:
        self.tally = tally
        self.always = tuple(always)
        self.stream = stream if stream is not None else sys.stderr
        self.line_every_s = line_every_s
        self.last = tally()
        self.poll_s = poll_s if poll_s is not None else max(1.0, self.last.total / CELLS_READ_PER_S)
        self.clock = Clock(self.last.done, since)
        self.printed_finished: int | None = None
        self.printed_at = self.clock.started
        self.bar: tqdm | None = None
        if self.stream.isatty():
            self.bar = tqdm(total=max(1, self.last.total), bar_format="sweep {percentage:3.0f}%|{bar:20}| {desc}",
                            file=self.stream, leave=False, dynamic_ncols=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self, tally: Tally) -> str:
        return tally.text(self.always, self.clock.elapsed(), self.clock.left(tally))

    def update(self) -> Tally:
        """Read the tally and show it; returns it."""
        tally = self.last = self.tally()
        if all(state in WAITING for state in tally.counts):
            self.clock.restart(tally.done)  # no cell has started: the rate is measured from the first one's start
        if self.bar is not None:
            self.bar.total = max(1, tally.total)
            self.bar.n = tally.done
            self.bar.set_description_str(self.line(tally), refresh=False)
            self.bar.refresh()
        elif tally.finished != self.printed_finished and self.clock.now() - self.printed_at >= self.line_every_s:
            self.stream.write(f"sweep: {self.line(tally)}\n")
            self.stream.flush()
            self.printed_finished, self.printed_at = tally.finished, self.clock.now()
        return tally

    def start(self) -> None:
        self.update()
        self._thread = threading.Thread(target=self._run, name="sweep-view", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.update()

    def stop(self) -> None:
        """Stop the thread (if started) and take the bar off the terminal."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.bar is not None:
            self.bar.close()
