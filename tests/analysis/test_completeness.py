"""Running / failed / missing / unreadable runs are listed, never averaged silently."""

import shutil

import pytest

from analysis import completeness
from analysis.records import load_records
from analysis.report import load
from analysis.tidy import select, tidy_frame


def _incomplete(root, metric="final"):
    found = load_records([root])
    return completeness.incomplete(select(tidy_frame(found.records)), found, metric)


def test_the_sweep_lists_its_failed_run_missing_seed_corrupt_file_and_orphan(sweep):
    table = _incomplete(sweep.root)
    rows = {row.status: row for row in table.itertuples()}
    assert sorted(rows) == ["failed", "missing", "no record", "unreadable"]
    assert rows["unreadable"].path == str(sweep.corrupt)
    assert rows["no record"].path == str(sweep.orphan)
    failed = rows["failed"]
    assert (failed.strength, failed.interval, failed.seed) == sweep.failed_cell
    assert (failed.path, failed.detail) == (str(sweep.failed), "ValueError: loss is NaN at step 12")
    missing = rows["missing"]
    assert (missing.strength, missing.interval, missing.seed) == sweep.missing_cell
    assert (missing.method, missing.schedule, missing.detail) == ("ema", "periodic", "no record for this seed")


def test_seeds_promised_by_multirun_yaml_are_expected_everywhere(sweep):
    (sweep.root / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - seed=0,1,2,3\n")
    table = _incomplete(sweep.root)
    seed3 = table[(table["status"] == "missing") & (table["seed"] == 3)]
    # 6 periodic EMA cells, the random-schedule cell and the baseline cell each lack seed 3
    assert len(seed3) == 8
    assert set(zip(seed3["method"], seed3["schedule"])) == {("ema", "periodic"), ("ema", "random"), ("baseline", "periodic")}


def test_a_cell_without_any_record_is_missing_for_every_seed(sweep):
    for result in sweep.root.glob("*/result.json"):
        text = result.read_text()
        if '"interval": 0.5' in text and '"strength": 0.9,' in text:
            shutil.rmtree(result.parent)
    table = _incomplete(sweep.root)
    gone = table[(table["interval"] == 0.5) & (table["strength"] == 0.9)]
    assert gone[["status", "seed", "detail"]].values.tolist() == [["missing", s, "no record for this cell"] for s in (0, 1, 2)]


def test_a_running_run_shows_its_progress(tmp_path, make_record, write_run):
    write_run(tmp_path / "a", make_record("ema", 0.5, 0.9, 0, {"ema": 0.5}))
    write_run(tmp_path / "b", make_record("ema", 0.5, 0.9, 1, {"ema": 0.4}, status="running"))
    table = _incomplete(tmp_path)
    assert table[["status", "seed", "detail"]].values.tolist() == [["running", 1, "1/3 epochs"]]
    assert load([tmp_path]).points["n"].tolist() == [1]


def test_a_completed_run_without_the_chosen_metric_is_listed(tmp_path, make_record, write_run):
    result = make_record("ema", 0.5, 0.9, 0, {"ema": 0.5})
    result["metrics"]["ema"]["test_acc_at_best_val"] = None  # no validation split
    write_run(tmp_path / "a", result)
    assert _incomplete(tmp_path, "final").empty
    table = _incomplete(tmp_path, "best_val")
    assert table[["status", "detail"]].values.tolist() == [
        ["no metric", "target 'ema' has no test_acc_at_best_val (needed by --metric best_val)"]]
    assert load([tmp_path], "best_val").points.empty


def test_summary_counts_then_lists(sweep):
    lines = completeness.summary(_incomplete(sweep.root), limit=2)
    assert lines[0] == "incomplete (left out of every mean): 1 unreadable, 1 no record, 1 failed, 1 missing"
    assert lines[1].startswith(f"  unreadable: {sweep.corrupt} unreadable")
    assert lines[2] == f"  no record: {sweep.orphan} Hydra job directory without result.json"
    assert lines[3] == "  ... and 2 more (see incomplete.csv)"
    assert completeness.describe(_incomplete(sweep.root).iloc[3]) == \
        "missing: ema decay=0.9 periodic s=1 digits/small_cnn seed=1 no record for this seed"


def test_a_complete_sweep_says_so(tmp_path, make_record, write_run):
    write_run(tmp_path / "a", make_record("ema", 0.5, 0.9, 0, {"ema": 0.5}))
    assert completeness.summary(_incomplete(tmp_path)) == ["complete: every cell has a completed record for every seed"]


@pytest.mark.parametrize("status", ["failed", "diverged", "running"])
def test_no_status_but_completed_enters_a_mean(tmp_path, make_record, write_run, status):
    write_run(tmp_path / "a", make_record("ema", 0.5, 0.9, 0, {"ema": 0.5}))
    write_run(tmp_path / "b", make_record("ema", 0.5, 0.9, 1, {"ema": 0.1}, status=status))
    points = load([tmp_path]).points
    assert points[["mean", "n"]].values.tolist() == [[pytest.approx(50.0), 1]]
