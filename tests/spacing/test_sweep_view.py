"""The sweep's view: cells counted by outcome, training done counted in cells, the time left at the rate seen,
and a plain line off a terminal only when cells have finished."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from spacing.sweep_callback import Cell, LaunchSummary
from spacing.sweep_state import CELL_FILE, launch_outcome_path
from spacing.sweep_view import Clock, SweepView, Tally, clock, launch_tally, trained_fraction

LAUNCH_ALWAYS = ("completed", "skipped", "failed")


def write_cell(cell: Path, record: dict | None = None, marker: dict | None = None) -> Path:
    cell.mkdir(parents=True, exist_ok=True)
    if record is not None:
        (cell / "result.json").write_text(json.dumps(record))
    if marker is not None:
        (cell / CELL_FILE).write_text(json.dumps(marker))
        outcome = launch_outcome_path(cell, marker["launch"])  # what that launch recorded for the cell
        outcome.parent.mkdir(parents=True, exist_ok=True)
        outcome.write_text(json.dumps(marker))
    return cell


def test_a_cells_training_counts_the_fraction_of_its_epochs_recorded(tmp_path: Path) -> None:
    assert trained_fraction(write_cell(tmp_path / "new")) == 0
    assert trained_fraction(write_cell(tmp_path / "half", {"status": "running", "epochs": 10, "epochs_completed": 5})) == 0.5
    assert trained_fraction(write_cell(tmp_path / "done", {"status": "completed", "epochs": 10, "epochs_completed": 10})) == 1


def test_a_launch_counts_its_cells_by_the_outcome_its_markers_give(tmp_path: Path) -> None:
    cells = [
        write_cell(tmp_path / "a", {"status": "completed", "epochs": 4, "epochs_completed": 4}, {"launch": "L", "outcome": "completed"}),
        write_cell(tmp_path / "b", {"status": "completed", "epochs": 4, "epochs_completed": 4}, {"launch": "L", "outcome": "skipped"}),
        write_cell(tmp_path / "c", {"status": "running", "epochs": 4, "epochs_completed": 1}, {"launch": "L", "outcome": "running"}),
        write_cell(tmp_path / "d", {"status": "failed", "epochs": 4, "epochs_completed": 2}, {"launch": "old", "outcome": "failed"}),
        write_cell(tmp_path / "e"),
    ]
    tally = launch_tally(cells, "L")
    assert tally.counts == {"completed": 1, "skipped": 1, "running": 1, "queued": 2}  # d was an older launch's: queued again
    assert tally.done == 1 + 1 + 1 / 4 + 2 / 4 + 0
    assert tally.text(LAUNCH_ALWAYS, elapsed=62, left=121) == (
        "2/5 cells done (1 completed, 1 skipped, 0 failed), 1 running, 2 queued; 1:02 elapsed, 2:01 left")


def test_outcomes_beyond_the_usual_are_counted_when_a_cell_has_them() -> None:
    tally = Tally({"completed": 3, "diverged": 1, "lost": 2}, done=6)
    assert tally.text(LAUNCH_ALWAYS, elapsed=3700, left=None) == (
        "6/6 cells done (3 completed, 0 skipped, 0 failed, 1 diverged, 2 lost); 1:01:40 elapsed")
    assert Tally({"running": 2}, done=0.5).text(LAUNCH_ALWAYS, 5, None).endswith("; 0:05 elapsed, time left not known yet")


def test_the_time_left_is_the_training_left_at_the_rate_seen_since_the_clock_started() -> None:
    now = [1000.0]
    started = Clock(done=2.0, since=900.0, now=lambda: now[0])  # 2 cells' worth done before (skipped cells)
    assert started.left(Tally({"queued": 10}, done=2.0)) is None  # no progress seen yet
    now[0] = 1030.0
    tally = Tally({"completed": 3, "running": 2, "queued": 5}, done=3.5)
    # 1.5 cells of training in 30 s: the 10 - 3.5 cells left take 6.5 * 30 / 1.5 = 130 s
    assert started.left(tally) == pytest.approx(130.0)
    assert started.elapsed() == 130.0  # since the launch, not since the clock
    assert clock(130) == "2:10" and clock(7322) == "2:02:02"


def test_off_a_terminal_the_view_writes_a_line_only_when_cells_have_finished() -> None:
    tallies = iter([Tally({"queued": 4}, 0), Tally({"running": 2, "queued": 2}, 0.5), Tally({"completed": 1, "running": 1, "queued": 2}, 1.5),
                    Tally({"completed": 1, "running": 1, "queued": 2}, 1.7), Tally({"completed": 2, "failed": 1, "running": 1}, 3.2)])
    out = io.StringIO()
    view = SweepView(lambda: next(tallies), LAUNCH_ALWAYS, stream=out, line_every_s=0)
    for _ in range(4):
        view.update()
    view.stop()
    lines = out.getvalue().splitlines()
    assert [line.split(";")[0] for line in lines] == [
        "sweep: 0/4 cells done (0 completed, 0 skipped, 0 failed), 2 running, 2 queued",  # the first line: the sweep has begun
        "sweep: 1/4 cells done (1 completed, 0 skipped, 0 failed), 1 running, 2 queued",
        "sweep: 3/4 cells done (2 completed, 0 skipped, 1 failed), 1 running",
    ]


def test_the_rate_is_measured_from_the_first_cells_start_not_from_the_launch() -> None:
    now = [0.0]
    tallies = iter([Tally({"queued": 4}, 0), Tally({"queued": 4}, 0), Tally({"running": 1, "queued": 3}, 0.2),
                    Tally({"completed": 2, "queued": 2}, 2)])
    view = SweepView(lambda: next(tallies), LAUNCH_ALWAYS, stream=io.StringIO())
    view.clock = Clock(0, now=lambda: now[0])
    for now[0] in (100.0, 110.0, 130.0):  # composing the grid took 100 s; then 2 cells trained in 30 s
        view.update()
    assert view.clock.elapsed() == 130.0
    assert view.clock.left(view.last) == pytest.approx((4 - 2) * 30 / 2)  # not (4 - 2) * 130 / 2


def test_a_launchs_summary_counts_an_outcome_it_does_not_know_yet(tmp_path: Path) -> None:
    summary = LaunchSummary(tmp_path, (Cell(tmp_path / "a", "completed", None), Cell(tmp_path / "b", "lost", "its task ended"),
                                       Cell(tmp_path / "c", "diverged", "nan")))
    assert summary.lines()[0] == f"sweep {tmp_path}: 3 cells, 1 completed, 0 skipped, 0 failed, 1 diverged, 1 lost"
