"""Records written by real training runs, read by analysis: device, threads, cost and series survive the trip."""

import json

import pytest
import torch

from analysis.report import load
from spacing.runner import run


@pytest.fixture
def two_epoch_settings(tmp_path, make_config):
    """Massed EMA runs of seeds 0 and 1 at 1 and at 2 epochs: two sweeps that differ in a non-grid key."""
    for epochs in (1, 2):
        for seed in (0, 1):
            cfg = make_config("method=ema", "method.interval=0", f"trainer.epochs={epochs}", f"seed={seed}",
                              "dataset.train_size=64", "dataset.test_size=32", "trainer.batch_size=32")
            run(cfg, tmp_path / f"epochs{epochs}" / f"seed{seed}")
    return tmp_path


def test_runs_record_device_and_threads_and_analysis_reads_two_series_with_their_cost(two_epoch_settings):
    record = json.loads((two_epoch_settings / "epochs1" / "seed0" / "result.json").read_text())
    assert record["device"] == {"kind": "cpu", "count": 1}
    assert record["threads"] == torch.get_num_threads()
    analysis = load([two_epoch_settings / "epochs1", two_epoch_settings / "epochs2"])
    points = analysis.points.sort_values("series")
    assert points["series"].tolist() == ["trainer.epochs=1", "trainer.epochs=2"]
    assert points["n"].tolist() == [2, 2]
    assert set(analysis.runs["device_kind"]) == {"cpu"}
    assert set(analysis.runs["threads"]) == {torch.get_num_threads()}
    walls = [json.loads(p.read_text())["wall_time_s"] for p in two_epoch_settings.glob("*/*/result.json")]
    assert min(walls) > 0 and analysis.runs["hours"].sum() == pytest.approx(sum(walls) / 3600)
    assert analysis.incomplete.empty
