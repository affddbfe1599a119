"""A checkpoint is data, never code: a file that would run code is refused unread, and the release's checkpoints resume.

The crafted file is what anyone who can write a cell dir could leave there: ``torch.save`` of an
object whose ``__reduce__`` runs a shell command that creates a marker file. The dataset pickles
(CIFAR) that the harness reads are held to the same rule.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spacing.checkpoint import NotData, load_data
from spacing.config import DatasetConfig
from spacing.contract import CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE
from spacing.data import DATASETS
from spacing.errors import DataError
from spacing.methods.baseline import Baseline
from spacing.runner import run
from spacing.unpickle import load_arrays
from tests.helpers import FAST, compose_config, run_cli, write_cifar

OVERRIDES = (*FAST, "trainer.epochs=3", "trainer.threads=1")
RELEASE_NUMPY_GLOBALS = {"numpy.ndarray", "numpy._core.multiarray._reconstruct", "numpy.dtype"}
"""The globals a checkpoint of the release at 63f2344 holds (its numpy RNG state), as numpy 2 names them."""


class RunsAShellCommand:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def record(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def stopped_after_two_epochs(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of OVERRIDES killed in its third epoch: status running, checkpoint.pt of epoch 2, checkpoint.prev.pt of epoch 1."""
    original = Baseline.train_step

    def crash(self, batch, step):  # type: ignore[no-untyped-def]
        if step == 2 * self.ctx.steps_per_epoch + 1:
            raise KeyboardInterrupt  # like a kill: no record of the failure
        return original(self, batch, step)

    with monkeypatch.context() as patch:
        patch.setattr(Baseline, "train_step", crash)
        with pytest.raises(KeyboardInterrupt):
            run(compose_config(OVERRIDES), out)
    assert (record(out)["status"], record(out)["epochs_completed"]) == ("running", 2)


def as_release_wrote_it(path: Path) -> None:
    """Rewrite the checkpoint at `path` as the release did: numpy's RNG state as ``np.random.get_state()``'s tuple."""
    state = load_data(path)
    numpy = state["rng"]["numpy"]
    key = numpy["state"]["key"].numpy().astype(np.uint32)
    state["rng"]["numpy"] = ("MT19937", key, numpy["state"]["pos"], numpy["has_gauss"], numpy["gauss"])
    torch.save(state, path)
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) == RELEASE_NUMPY_GLOBALS


def test_a_checkpoint_that_would_run_code_runs_nothing_and_the_relaunch_recovers(tmp_path: Path, monkeypatch) -> None:
    out, marker = tmp_path / "run", tmp_path / "marker"
    stopped_after_two_epochs(out, monkeypatch)
    torch.save({"progress": RunsAShellCommand(marker)}, out / CHECKPOINT_FILE)

    proc = run_cli(*OVERRIDES, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists()
    done = record(out)
    assert (done["status"], done["epochs_completed"]) == ("completed", 3)
    [note] = done["checkpoint_recoveries"]
    assert (note["unreadable"], note["resumed_from"], note["resumed_at_epoch"]) == (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, 1)
    assert note["error"] == "NotData: refused unread: it names code to run when loaded (posix.system), not only tensors and plain data"


def test_with_both_checkpoints_crafted_nothing_runs_and_the_run_starts_over(tmp_path: Path, monkeypatch) -> None:
    stopped_after_two_epochs(tmp_path, monkeypatch)
    for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
        torch.save({"progress": RunsAShellCommand(tmp_path / f"marker-{name}")}, tmp_path / name)
    done = run(compose_config(OVERRIDES), tmp_path)
    assert not list(tmp_path.glob("marker-*"))
    assert (done["status"], done["epochs_completed"]) == ("completed", 3)
    notes = done["checkpoint_recoveries"]
    assert [n["unreadable"] for n in notes] == [CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE]
    assert {(n["resumed_from"], n["resumed_at_epoch"]) for n in notes} == {(None, 0)}
    assert all(n["error"].startswith("NotData: refused unread") for n in notes)


def test_a_checkpoint_of_the_release_resumes_and_the_next_save_is_plain_data(tmp_path: Path, monkeypatch) -> None:
    full = run(compose_config(OVERRIDES), tmp_path / "full")
    out = tmp_path / "resumed"
    stopped_after_two_epochs(out, monkeypatch)
    for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
        as_release_wrote_it(out / name)

    resumed = run(compose_config([*OVERRIDES, "trainer.keep_checkpoint=true"]), out)
    assert resumed["checkpoint_recoveries"] == []
    assert (resumed["status"], resumed["metrics"], resumed["steps"]) == ("completed", full["metrics"], full["steps"])
    assert torch.serialization.get_unsafe_globals_in_checkpoint(out / CHECKPOINT_FILE) == []
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["progress"]["epoch"] == 3


def test_a_release_checkpoint_written_under_numpy_1_reads_too(tmp_path: Path) -> None:
    """numpy 1.x named the array's constructor numpy.core.multiarray._reconstruct."""
    np.random.seed(7)
    buffer = io.BytesIO()
    torch.save({"numpy": np.random.get_state()}, buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(tmp_path / "numpy1.pt", "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(item, data)
    assert "numpy.core.multiarray._reconstruct" in torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "numpy1.pt")
    kind, key, *_ = load_data(tmp_path / "numpy1.pt")["numpy"]
    assert kind == "MT19937" and np.array_equal(key, np.random.get_state()[1])


def test_anything_else_outside_plain_data_is_refused(tmp_path: Path) -> None:
    torch.save({"path": Path("/somewhere")}, tmp_path / "other.pt")
    with pytest.raises(NotData, match=r"PosixPath"):
        load_data(tmp_path / "other.pt")


def test_a_cifar_pickle_that_would_run_code_runs_nothing(tmp_path: Path) -> None:
    write_cifar(tmp_path, hundred=False)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": RunsAShellCommand(tmp_path / "marker")}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1 is not a CIFAR python pickle \(refused unread: it names posix.system"):
        DATASETS["cifar10"](DatasetConfig(name="cifar10", root=str(tmp_path)))
    assert not (tmp_path / "marker").exists()


def test_a_python_2_pickle_of_an_array_reads_as_data() -> None:
    """The official CIFAR files: protocol 2, the array's constructor under numpy 1.x's name."""
    rows = np.arange(12, dtype=np.uint8).reshape(2, 6)
    written = pickle.dumps({"data": rows, "labels": [3, 1]}, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in written
    read = load_arrays(io.BytesIO(written), encoding="latin1")
    assert np.array_equal(read["data"], rows) and read["labels"] == [3, 1]
