"""Files that go bad: damaged checkpoints, kills inside the writes, leftovers, refused relaunches, a full disk.

Every case ends the same way: re-launching the same command gives the record an uninterrupted run
gives (timings aside), and nothing the run had finished is lost beyond one epoch.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import spacing.atomic as atomic
from spacing.contract import CHECKPOINT_FILE, CLAIM_FILE, PREVIOUS_CHECKPOINT_FILE
from spacing.errors import ConfigError, DiskFull
from spacing.methods.baseline import Baseline
from spacing.runner import RUNNER_FILES, run
from tests.helpers import FAST, ROOT, compose_config

OVERRIDES = ("trainer.epochs=3",)


def config(*extra: str):
    return compose_config([*FAST, *OVERRIDES, *extra])


def history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def record(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must end up equal to."""
    out = tmp_path_factory.mktemp("full")
    run(config(), out)
    return out


def assert_same_as_full(out: Path, full: Path) -> None:
    assert record(out)["status"] == "completed"
    assert record(out)["metrics"] == record(full)["metrics"]
    assert record(out)["steps"] == record(full)["steps"]
    assert history(out) == history(full)
    assert not [tmp for name in RUNNER_FILES for tmp in out.glob(f".{name}.*.tmp")]
    assert not (out / CHECKPOINT_FILE).exists() and not (out / PREVIOUS_CHECKPOINT_FILE).exists()
    assert not (out / CLAIM_FILE).exists()


def interrupt_in_third_epoch(monkeypatch) -> None:
    original = Baseline.train_step

    def crash(self, batch, step):
        if step == 2 * self.ctx.steps_per_epoch + 1:
            raise KeyboardInterrupt  # like a kill: no record of the failure
        return original(self, batch, step)

    monkeypatch.setattr(Baseline, "train_step", crash)


def stopped_after_two_epochs(out: Path, monkeypatch) -> None:
    """A run of `config()` stopped in its third epoch: checkpoint.pt holds epoch 2, checkpoint.prev.pt epoch 1."""
    with monkeypatch.context() as patch:
        interrupt_in_third_epoch(patch)
        with pytest.raises(KeyboardInterrupt):
            run(config(), out)
    assert record(out)["epochs_completed"] == 2
    epochs = {name: torch.load(out / name, weights_only=True)["progress"]["epoch"] for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE)}
    assert epochs == {CHECKPOINT_FILE: 2, PREVIOUS_CHECKPOINT_FILE: 1}


def test_a_truncated_checkpoint_costs_one_epoch_and_the_record_says_so(full: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    stopped_after_two_epochs(tmp_path, monkeypatch)
    data = (tmp_path / CHECKPOINT_FILE).read_bytes()
    (tmp_path / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])

    with caplog.at_level("INFO", logger="spacing"):
        resumed = run(config(), tmp_path)
    assert f"resumed from {tmp_path / PREVIOUS_CHECKPOINT_FILE} at epoch 1" in caplog.text  # epoch 2 is redone
    assert_same_as_full(tmp_path, full)
    [note] = resumed["checkpoint_recoveries"]
    assert (note["unreadable"], note["resumed_from"], note["resumed_at_epoch"]) == (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, 1)
    assert note["error"].split(": ")[0] in ("RuntimeError", "OSError", "EOFError")  # PyTorch's own words for a cut file
    assert record(tmp_path)["checkpoint_recoveries"] == resumed["checkpoint_recoveries"]
    assert record(full)["checkpoint_recoveries"] == []


def test_the_recovery_note_survives_a_later_resume(full: Path, tmp_path: Path, monkeypatch) -> None:
    stopped_after_two_epochs(tmp_path, monkeypatch)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"")  # an empty file, as a full disk or a bad copy leaves
    with monkeypatch.context() as patch:
        interrupt_in_third_epoch(patch)
        with pytest.raises(KeyboardInterrupt):
            run(config(), tmp_path)  # resumes from epoch 1, saves epoch 2, stopped again
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["progress"]["epoch"] == 2
    resumed = run(config(), tmp_path)  # from the good checkpoint.pt of epoch 2
    assert_same_as_full(tmp_path, full)
    assert [note["unreadable"] for note in resumed["checkpoint_recoveries"]] == [CHECKPOINT_FILE]


def test_with_no_readable_checkpoint_the_run_starts_over(full: Path, tmp_path: Path, monkeypatch) -> None:
    stopped_after_two_epochs(tmp_path, monkeypatch)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    torch.save({"something": "else"}, tmp_path / PREVIOUS_CHECKPOINT_FILE)
    resumed = run(config(), tmp_path)
    assert_same_as_full(tmp_path, full)
    notes = resumed["checkpoint_recoveries"]
    assert [n["unreadable"] for n in notes] == [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE]
    assert {(n["resumed_from"], n["resumed_at_epoch"]) for n in notes} == {(None, 0)}
    assert "missing progress" in notes[1]["error"]


def test_a_relaunch_with_another_config_is_refused_before_writing_anything(tmp_path: Path, monkeypatch) -> None:
    stopped_after_two_epochs(tmp_path, monkeypatch)
    before = files(tmp_path)
    with pytest.raises(ConfigError, match="was written by a run with a different config"):
        run(config("trainer.lr=0.5"), tmp_path)
    assert files(tmp_path) == before  # byte for byte, and no file added (the claim is released)

    (tmp_path / CHECKPOINT_FILE).write_bytes(b"damaged")  # the refusal also holds when it rests on checkpoint.prev.pt
    before = files(tmp_path)
    with pytest.raises(ConfigError, match=f"{PREVIOUS_CHECKPOINT_FILE} was written by a run with a different config"):
        run(config("trainer.lr=0.5"), tmp_path)
    assert files(tmp_path) == before


def test_a_completed_cell_of_another_config_is_refused_byte_for_byte(tmp_path: Path) -> None:
    run(config(), tmp_path)
    before = files(tmp_path)
    with pytest.raises(ConfigError, match="already holds a completed run of a different config"):
        run(config("trainer.epochs=4"), tmp_path)
    assert files(tmp_path) == before


def test_leftover_temp_files_and_checkpoints_are_cleaned_on_start_and_on_skip(full: Path, tmp_path: Path, monkeypatch) -> None:
    stopped_after_two_epochs(tmp_path, monkeypatch)
    leftovers = [".checkpoint.pt.k2x9_d.tmp", ".checkpoint.pt.aa1.tmp", ".result.json.q8.tmp", ".history.csv.z.tmp"]
    for name in leftovers:
        (tmp_path / name).write_bytes(b"\0" * 1000)
    (tmp_path / ".sweep_cell.json.q.tmp").write_bytes(b"{")  # not the runner's file: not its to remove
    run(config(), tmp_path)
    assert_same_as_full(tmp_path, full)
    assert [p.name for p in tmp_path.glob(".*.tmp")] == [".sweep_cell.json.q.tmp"]

    (tmp_path / CHECKPOINT_FILE).write_bytes(b"left by a kill while the finished run deleted it")
    (tmp_path / PREVIOUS_CHECKPOINT_FILE).write_bytes(b"likewise")
    (tmp_path / ".checkpoint.pt.k3.tmp").write_bytes(b"")
    completed = (tmp_path / "result.json").read_bytes()
    run(config(), tmp_path)  # skipped: already completed
    assert (tmp_path / "result.json").read_bytes() == completed
    assert not (tmp_path / CHECKPOINT_FILE).exists() and not (tmp_path / PREVIOUS_CHECKPOINT_FILE).exists()
    assert not (tmp_path / ".checkpoint.pt.k3.tmp").exists()


def test_keep_checkpoint_keeps_the_last_one_only(tmp_path: Path) -> None:
    run(config("trainer.keep_checkpoint=true"), tmp_path)
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["progress"]["epoch"] == 3
    assert not (tmp_path / PREVIOUS_CHECKPOINT_FILE).exists()


def torch_disk_full(*args, **kwargs):
    """What torch.save raises on a full disk: its zip writer's RuntimeError, raised while handling the OSError."""
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # noqa: B904


def test_a_full_disk_during_a_checkpoint_is_one_sentence_and_the_run_resumes(full: Path, tmp_path: Path, monkeypatch) -> None:
    real_save = torch.save

    def save(state, handle):
        if isinstance(state, dict) and state.get("progress", {}).get("epoch") == 2:
            torch_disk_full()
        real_save(state, handle)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", save)
        with pytest.raises(DiskFull) as raised:
            run(config(), tmp_path)
    message = str(raised.value)
    assert message == (
        f"the disk is full at {tmp_path} (No space left on device while writing {CHECKPOINT_FILE}); free space there "
        "(or raise your quota) and run the same command again: it resumes from the checkpoint of epoch 1 of 3."
    )
    failed = record(tmp_path)
    assert (failed["status"], failed["error"], failed["epochs_completed"]) == ("failed", message, 1)
    assert [row["epoch"] for row in history(tmp_path)] == ["1"]
    assert not list(tmp_path.glob(".*.tmp"))

    run(config(), tmp_path)
    assert_same_as_full(tmp_path, full)


def test_a_full_quota_on_the_record_is_one_sentence_and_keeps_the_last_good_record(full: Path, tmp_path: Path, monkeypatch) -> None:
    writes = {"result.json": 0}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if ".result.json." in os.readlink(f"/proc/self/fd/{fd}"):
            writes["result.json"] += 1
            if writes["result.json"] >= 3:  # the start, epoch 1, then full from epoch 2 on
                raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "fsync", fsync)
        with pytest.raises(DiskFull, match=r"Disk quota exceeded while writing result\.json\); .* it resumes from the checkpoint of epoch 2 of 3\.$"):
            run(config(), tmp_path)
    assert (record(tmp_path)["status"], record(tmp_path)["epochs_completed"]) == ("running", 1)  # the last one written
    assert not list(tmp_path.glob(".*.tmp"))
    run(config(), tmp_path)
    assert_same_as_full(tmp_path, full)


KILLED = """
import os, signal, sys
import torch
import spacing.atomic, spacing.checkpoint, spacing.record, spacing.runner as runner
from tests.helpers import FAST, compose_config

torch.set_num_threads(int(sys.argv[2]))  # the test process's: CPU numbers are identical only at one thread count

def die():
    os.kill(os.getpid(), signal.SIGKILL)

{patch}
runner.run(compose_config([*FAST, "trainer.epochs=3"]), sys.argv[1])
"""
KILLS = {
    "inside the checkpoint write": """
        real_save = torch.save
        def save(state, handle):
            if state["progress"]["epoch"] == 2:
                handle.write(b"PK\\x03\\x04 half a zip"); handle.flush(); die()
            real_save(state, handle)
        torch.save = save
    """,
    "between keeping the previous checkpoint and renaming the new one": """
        real_replace = os.replace
        def replace(src, dst):
            real_replace(src, dst)
            if str(dst).endswith("checkpoint.prev.pt"):
                die()
        spacing.atomic.os.replace = replace
    """,
    "between history.csv and result.json": """
        real_write = spacing.record.atomic_write_text
        def write(path, text):
            if path.name == "result.json" and '"epochs_completed": 2' in text:
                die()
            real_write(path, text)
        spacing.record.atomic_write_text = write
    """,
    "while the finished run deletes its checkpoints": """
        spacing.checkpoint.remove_checkpoints = lambda *args, **kwargs: die()
    """,
}


@pytest.mark.parametrize("where", list(KILLS))
def test_a_sigkill_inside_the_writes_resumes_to_the_uninterrupted_record(where: str, full: Path, tmp_path: Path) -> None:
    script = KILLED.format(patch=textwrap.dedent(KILLS[where]))
    command = [sys.executable, "-c", script, str(tmp_path), str(torch.get_num_threads())]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert (tmp_path / CLAIM_FILE).exists()  # a killed holder cannot release its claim
    left = record(tmp_path)
    if where == "inside the checkpoint write":
        assert list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    if where == "between keeping the previous checkpoint and renaming the new one":
        assert not (tmp_path / CHECKPOINT_FILE).exists() and (tmp_path / PREVIOUS_CHECKPOINT_FILE).exists()
    if where == "between history.csv and result.json":
        # result.json is authoritative: history.csv holds one epoch more, which the checkpoint also holds
        assert left["epochs_completed"] == 1 and [row["epoch"] for row in history(tmp_path)] == ["1", "2"]
    if where == "while the finished run deletes its checkpoints":
        assert left["status"] == "completed" and (tmp_path / CHECKPOINT_FILE).exists()

    resumed = run(config(), tmp_path)  # the dead holder's claim (same host, pid gone) is taken over at once
    assert_same_as_full(tmp_path, full)
    assert resumed["checkpoint_recoveries"] == []


def test_a_full_disk_before_the_claim_is_one_sentence_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(DiskFull) as raised:
        run(config(), tmp_path)
    assert str(raised.value) == (
        f"the disk is full at {tmp_path} (No space left on device while writing {CLAIM_FILE}); free space there "
        "(or raise your quota) and run the same command again: it starts again from epoch 1."
    )
    assert list(tmp_path.iterdir()) == []
