"""Finding, parsing and checking run records: what is kept, what is reported by path."""

import json
import math

import pytest

from analysis.errors import AnalysisError
from analysis.records import load_records, read_history, read_sweep_info


def test_every_record_is_found_and_the_corrupt_file_and_orphan_job_are_reported(sweep):
    found = load_records([sweep.root])
    # 6 EMA cells x 3 seeds minus the missing one (the failed one is a record), random 3, baseline 3
    assert len(found.records) == 17 + 3 + 3
    assert [(p.path, p.reason.split(":")[0]) for p in found.problems] == [(str(sweep.corrupt), "unreadable")]
    assert [p.path for p in found.orphans] == [str(sweep.orphan)]
    assert {r["sweep_root"] for r in found.records} == {str(sweep.root)}
    failed = [r for r in found.records if r["status"] == "failed"]
    assert [r["path"] for r in failed] == [str(sweep.failed)]
    assert all("config" not in r and r["an_unknown_key"] == [1, 2] for r in found.records)


def test_values_are_normalised_and_infinity_is_offline(tmp_path, make_record, write_run):
    offline = make_record("online_kd", math.inf, 0.3, 0, {"student": 0.5})
    write_run(tmp_path / "a", offline)  # json.dumps writes Infinity, as Python's json does in training
    assert "Infinity" in (tmp_path / "a" / "result.json").read_text()
    write_run(tmp_path / "b", {**make_record("ema", 0.5, 0.9, 0, {"ema": 0.5}), "interval": "inf", "seed": "4"})
    by_dir = {r["path"].rsplit("/", 1)[1]: r for r in load_records([tmp_path]).records}
    assert math.isinf(by_dir["a"]["interval"]) and math.isinf(by_dir["b"]["interval"])
    assert by_dir["b"]["seed"] == 4
    assert by_dir["a"]["schedule"] == "periodic"


def test_a_baseline_without_interval_or_schedule_is_massed_periodic(tmp_path, make_record, write_run):
    write_run(tmp_path / "a", {**make_record("baseline", 0.0, None, 0, {"model": 0.5}), "interval": None, "schedule": None})
    (record,) = load_records([tmp_path]).records
    assert (record["interval"], record["schedule"]) == (0.0, "periodic")


@pytest.mark.parametrize(("change", "reason"), [
    ({"method": None}, "missing key(s): method"),
    ({"metrics": [1]}, "'metrics' is not an object"),
    ({"seed": "zero"}, "bad value"),
])
def test_invalid_records_are_reported_by_path_and_skipped(tmp_path, make_record, write_run, change, reason):
    run = write_run(tmp_path / "bad", {**make_record("ema", 0.5, 0.9, 0, {"ema": 0.5}), **change}, history=False)
    found = load_records([tmp_path])
    assert found.records == []
    assert [(p.path, p.reason.startswith(reason)) for p in found.problems] == [(str(run / "result.json"), True)]


def test_a_json_list_is_not_a_record(tmp_path, write_run):
    write_run(tmp_path / "x", "[1, 2]")
    assert [p.reason for p in load_records([tmp_path]).problems] == ["not a JSON object"]


def test_a_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(AnalysisError, match="does not exist; pass the directory Hydra printed"):
        load_records([tmp_path / "nope"])


def test_multirun_yaml_gives_sweep_name_and_seeds_command_line_first(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - +sweep=demo\n    - seed=0,1,2,3\n"
        "  sweeper:\n    params:\n      seed: range(0,2)\n      method.interval: 0,0.5\n"
    )
    info = read_sweep_info(tmp_path)
    assert (info.name, info.seeds) == ("demo", (0, 1, 2, 3))
    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n  sweeper:\n    params:\n"
                                           "      seed: range(0,6,2)\n")
    assert read_sweep_info(tmp_path).seeds == (0, 2, 4)
    (tmp_path / "multirun.yaml").write_text(": not yaml: [")
    assert read_sweep_info(tmp_path).seeds is None


def test_records_under_a_multirun_root_take_its_sweep_name_unless_they_name_one(tmp_path, make_record, write_run):
    root = tmp_path / "2025-01-31" / "12-00-00"
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - +sweep=ema_grid\n")
    write_run(root / "0", make_record("ema", 0.5, 0.9, 0, {"ema": 0.5}))
    write_run(root / "1", make_record("ema", 0.5, 0.9, 1, {"ema": 0.5}, sweep="mine"))
    records = load_records([tmp_path]).records
    assert [(r["sweep"], r["sweep_root"]) for r in records] == [("ema_grid", str(root)), ("mine", str(root))]


def test_history_without_test_accuracy_is_rejected(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,target\n1,model\n")
    with pytest.raises(ValueError, match="test_acc"):
        read_history(str(tmp_path))


def test_history_is_read_as_written(sweep):
    run = next(p for p in sorted(sweep.root.iterdir()) if (p / "history.csv").exists())
    history = read_history(str(run))
    result = json.loads((run / "result.json").read_text())
    final = history[history["epoch"] == sweep.epochs].set_index("target")["test_acc"].to_dict()
    assert final == pytest.approx({t: m["test_acc"] for t, m in result["metrics"].items()})
