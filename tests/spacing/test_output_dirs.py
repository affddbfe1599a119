"""Output dirs follow from the config: the same command resumes what was interrupted and skips what is finished.

A single run lands in ``outputs/<cell name>``, an ad-hoc grid in ``multirun/<method>-<digest of its
overrides>``, a named sweep in ``multirun/NAME``; a timestamp only on request, and then the
interrupt message prints the command (with the dir pinned) that resumes it.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spacing.compose import grid_dir_name
from tests.helpers import CELL_TINY, ROOT, cli_env, history_rows, launch, read_record, spacing

NAME = re.compile(r"^(?P<method>[a-z_+]+)-(?P<digest>[0-9a-f]{10})$")


def test_an_ad_hoc_grid_is_named_by_its_method_and_a_digest_of_what_it_spans() -> None:
    name = grid_dir_name(["method=ema", "method.interval=0,0.5", "seed=0,1", "trainer.epochs=3"], "baseline")
    assert NAME.match(name) and name.startswith("ema-")
    # the same grid typed in another order, its sweep values reordered, a neutral key changed: the same dir
    assert grid_dir_name(["trainer.epochs=3", "seed=1,0", "method.interval=0.5,0", "method=ema",
                          "trainer.threads=2", "trainer.device=cpu"], "baseline") == name
    # anything that changes the cells: another dir
    assert grid_dir_name(["method=ema", "method.interval=0,0.5", "seed=0,1", "trainer.epochs=4"], "baseline") != name
    assert grid_dir_name(["method=ema", "method.interval=0,0.5", "seed=0,1,2", "trainer.epochs=3"], "baseline") != name
    # no method override: the composed default method names it; a swept method: every method named
    assert grid_dir_name(["seed=0,1"], "baseline").startswith("baseline-")
    assert grid_dir_name(["method=ema,dropout", "seed=0"], "baseline").startswith("dropout+ema-")


@pytest.mark.slow
def test_an_ad_hoc_grid_launched_twice_trains_each_cell_once(tmp_path: Path) -> None:
    grid = ["method=ema", "method.interval=0,0.5", "seed=0,1", "trainer.epochs=1", *CELL_TINY]
    first = launch(*grid, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert NAME.match(sweep.name) and sweep.name.startswith("ema-")
    records = {cell.name: read_record(cell) for cell in sweep.glob("ema-*")}
    assert len(records) == 4
    # again, the values in another order and another thread count: nothing trains, every cell is skipped
    again = launch("seed=1,0", "method.interval=0.5,0", *[o for o in grid if "=0," not in o], "trainer.threads=1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (tmp_path / "multirun").iterdir()] == [sweep.name]
    assert f"sweep {sweep.relative_to(tmp_path)}: 4 cells, 0 completed, 4 skipped, 0 failed" in again.stdout + again.stderr
    assert {cell.name: read_record(cell) for cell in sweep.glob("ema-*")} == records
    plan = spacing("plan", *grid, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert str(sweep.relative_to(tmp_path)) in plan.stdout and "4 new" not in plan.stdout


RUN = ("dataset=synthetic", "dataset.train_size=4096", "model.width=8", "trainer.device=cpu", "trainer.epochs=12")


def interrupted(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`args` started in `cwd` and sent Ctrl-C's SIGINT once its first epoch is in a history.csv."""
    # SIGINT's default action in the child, as in a terminal (a shell starts background jobs with it ignored)
    proc = subprocess.Popen(args, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(
            len(path.read_text().splitlines()) >= 2 for path in cwd.glob("outputs/*/history.csv")
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def comparable(run_dir: Path) -> tuple[dict, list[dict[str, str]]]:
    """What an uninterrupted and a resumed run must share: metrics, steps and history (without timings)."""
    record = read_record(run_dir)
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in history_rows(run_dir)]
    return {key: record[key] for key in ("status", "metrics", "steps", "epochs_completed")}, history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("uninterrupted")
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *RUN], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (cwd / "outputs").iterdir()
    return run_dir


@pytest.mark.slow
def test_ctrl_c_then_the_same_command_resumes_a_default_dir_to_the_uninterrupted_record(uninterrupted: Path, tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "run.py"), *RUN]
    stopped = interrupted(args, tmp_path)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").iterdir()
    assert run_dir.name == uninterrupted.name  # the dir follows from the config, wherever the command runs
    last = stopped.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: interrupted at epoch \d+ \(outputs/{run_dir.name}\); run the same command again to resume\.", last)
    again = subprocess.run(args, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from " in (run_dir / "run.log").read_text()
    assert comparable(run_dir) == comparable(uninterrupted)


@pytest.mark.slow
def test_a_timestamped_dir_on_request_prints_the_command_that_resumes_it(uninterrupted: Path, tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "run.py"), *RUN, "hydra.run.dir=outputs/${now:%Y-%m-%d_%H-%M-%S}"]
    stopped = interrupted(args, tmp_path)
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", run_dir.name)
    last = stopped.stderr.strip().splitlines()[-1]
    command = last.partition("; to resume, run: ")[2]
    assert command.endswith(f"hydra.run.dir=outputs/{run_dir.name}"), last
    time.sleep(1.1)  # a new timestamp: only the pinned dir can find the run
    argv = shlex.split(command)
    assert argv[:2] == ["python", str(ROOT / "run.py")] and f"hydra.run.dir=outputs/${{now:%Y-%m-%d_%H-%M-%S}}" not in argv
    again = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == [run_dir.name]
    assert comparable(run_dir) == comparable(uninterrupted)
