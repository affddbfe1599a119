"""One cell, one trainer: the claim a run takes on its cell dir, and what a second launcher does."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import spacing.claim as claims
from spacing.claim import CLAIM_FILE, RUNNING_ELSEWHERE, RunningElsewhere, claim, holder
from spacing.loop import Trainer
from spacing.runner import run
from tests.helpers import ROOT

HOLD = "import sys, time; from spacing.claim import claim; c = claim(sys.argv[1]); print('held', flush=True); time.sleep(600)"


def write_claim(cell: Path, age_s: float = 0.0, **fields: object) -> None:
    """A claim file as another process would leave it, its heartbeat `age_s` seconds old."""
    content = {"host": "node-17", "pid": 4242, "started_at": "2024-01-01T00:00:00+0000", "token": "theirs"} | fields
    tmp = cell / "claim.json.new"
    tmp.write_text(json.dumps(content))
    then = time.time() - age_s
    os.utime(tmp, (then, then))
    os.replace(tmp, cell / CLAIM_FILE)  # whole, as a claim is always seen


@pytest.fixture
def holding_process(tmp_path: Path):
    """A live process on this host holding the claim of `tmp_path / 'cell'`."""
    cell = tmp_path / "cell"
    cell.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(cell)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield cell, proc
    proc.kill()
    proc.wait()


def test_a_live_claim_is_respected_and_a_dead_holders_claim_is_taken_over(holding_process) -> None:
    cell, proc = holding_process
    found = holder(cell)
    assert found is not None and (found.host, found.pid) == (socket.gethostname(), proc.pid)
    with pytest.raises(RunningElsewhere) as refused:
        claim(cell)
    message = str(refused.value)
    assert f"pid {proc.pid}" in message and socket.gethostname() in message
    assert f"delete {cell / CLAIM_FILE}" in message and message.count(". ") == 0

    proc.kill()
    proc.wait()
    assert holder(cell) is None  # same host, process gone: stale at once, no TTL to wait out
    with claim(cell) as mine:
        assert holder(cell).token == mine.mine.token
    assert not (cell / CLAIM_FILE).exists()


def test_a_claim_from_another_host_is_stale_only_when_its_heartbeat_stopped(tmp_path: Path) -> None:
    write_claim(tmp_path, age_s=claims.STALE_AFTER_S - 30)
    assert holder(tmp_path).host == "node-17"
    with pytest.raises(RunningElsewhere, match="node-17 pid 4242"):
        claim(tmp_path)
    write_claim(tmp_path, age_s=claims.STALE_AFTER_S + 30)
    assert holder(tmp_path) is None
    with claim(tmp_path):
        assert holder(tmp_path).pid == os.getpid()


def test_a_takeover_lock_left_by_a_killed_launcher_does_not_block_the_takeover(tmp_path: Path) -> None:
    write_claim(tmp_path, age_s=claims.STALE_AFTER_S + 30)
    lock = tmp_path / f"{CLAIM_FILE}.takeover"
    lock.write_text(json.dumps({"host": "node-3", "pid": 99, "started_at": "?", "token": "killed"}))
    then = time.time() - claims.TAKEOVER_STALE_S - 5
    os.utime(lock, (then, then))
    with claim(tmp_path):
        assert holder(tmp_path).pid == os.getpid()
    assert not lock.exists()


def test_a_requeued_slurm_task_takes_over_the_claim_of_its_earlier_run(tmp_path: Path, monkeypatch) -> None:
    write_claim(tmp_path, slurm_job="77", slurm_restart=0)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")  # another step of the same allocation: a live peer
    with pytest.raises(RunningElsewhere):
        claim(tmp_path)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the same task after a requeue: its earlier run is dead
    with claim(tmp_path):
        assert holder(tmp_path).slurm_restart == 1


def test_the_heartbeat_keeps_a_claim_fresh_and_a_lost_claim_stops_its_holder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(claims, "HEARTBEAT_S", 0.05)
    held = claim(tmp_path)
    try:
        old = time.time() - 1000
        os.utime(tmp_path / CLAIM_FILE, (old, old))
        time.sleep(0.5)
        assert holder(tmp_path).heartbeat_age_s < 5
        write_claim(tmp_path)  # taken over by another process while this one was, say, suspended
        with pytest.raises(RunningElsewhere, match="lost its claim .* to node-17 pid 4242"):
            held.refresh()
    finally:
        held.release()
    assert json.loads((tmp_path / CLAIM_FILE).read_text())["token"] == "theirs"  # not ours to remove


def test_without_hard_links_the_claim_falls_back_to_an_exclusive_create(tmp_path: Path, monkeypatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(claims.os, "link", no_links)
    with claim(tmp_path):
        with pytest.raises(RunningElsewhere):
            claim(tmp_path)
    assert not (tmp_path / CLAIM_FILE).exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_racing_launches_train_a_cell_once(make_config, tmp_path: Path, monkeypatch) -> None:
    """Four threads launch the same cell at once: one trains it; each other one either finds it
    running elsewhere or (arriving after it finished) skips it."""
    trained = []
    original = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: (trained.append(self.record.out_dir), original(self))[1])
    start = threading.Barrier(4)
    outcomes: list[str] = []
    configs = [make_config("trainer.epochs=2") for _ in range(4)]  # composed here: Hydra's compose is not thread-safe

    def launch(cfg) -> None:
        start.wait()
        try:
            outcomes.append(run(cfg, tmp_path)["status"])
        except RunningElsewhere:
            outcomes.append(RUNNING_ELSEWHERE)

    threads = [threading.Thread(target=launch, args=(cfg,)) for cfg in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trained == [tmp_path]
    assert sorted(set(outcomes)) <= ["completed", RUNNING_ELSEWHERE] and outcomes.count("completed") >= 1
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    assert not (tmp_path / CLAIM_FILE).exists()


def test_a_launch_moves_past_a_cell_running_elsewhere_without_touching_it(holding_process) -> None:
    cell, proc = holding_process
    (cell / "result.json").write_text('{"status": "running"}\n')
    before = {path.name: path.read_bytes() for path in cell.iterdir()}
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), f"hydra.run.dir={cell}", "dataset=synthetic", "trainer.epochs=1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "is being trained elsewhere by" in result.stderr and f"pid {proc.pid}" in result.stderr
    after = {path.name: path.read_bytes() for path in cell.iterdir() if path.name not in (".hydra", "run.log")}
    assert after == before
