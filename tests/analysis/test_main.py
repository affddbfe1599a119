"""``python -m analysis``: the full report, --list, figure NAME, bench, and one-sentence errors."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.catalogue import CATALOGUE
from analysis.report import load, write_data

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_full_report_writes_every_output_and_lists_what_is_incomplete(sweep, capsys):
    assert main([str(sweep.root)]) == 0
    out = capsys.readouterr().out
    analysis_dir = sweep.root / "analysis"
    expected = ["tidy.csv", "points.csv", "gains.csv", "incomplete.csv", *(f"{stem}.{ext}" for stem in
                ("interval_curve", "gain_curve", "heatmap", "history") for ext in ("png", "pdf", "csv")),
                "comparison.md", "comparison.tex", "comparison.csv", "summary.md"]
    for name in expected:
        assert (analysis_dir / name).stat().st_size > 0, name
        assert f"wrote {analysis_dir / name}" in out
    assert "incomplete (left out of every mean): 1 unreadable, 1 no record, 1 failed, 1 missing" in out
    assert str(sweep.corrupt) in out and str(sweep.failed) in out
    assert len(pd.read_csv(analysis_dir / "tidy.csv")) == 42
    assert pd.read_csv(analysis_dir / "incomplete.csv")["status"].tolist() == ["unreadable", "no record", "failed", "missing"]
    assert f"cost of {sweep.root}: 23 runs, 0.0064 device-hours" in out
    assert out.rstrip().splitlines()[-4] == ("verdict (test accuracy (%) at the final epoch; 95 % CI over seeds; "
                                             "interval chosen on validation):")
    summary = (analysis_dir / "summary.md").read_text()
    assert "- Spaced EMA, decay 0.9 (s = 0.5, chosen on validation) beats massed by 2.00 points" in summary
    gains = pd.read_csv(analysis_dir / "gains.csv")
    assert set(gains["comparison"]) == {"massed"} and len(gains) == 5  # 4 periodic spaced cells + random


def test_parquet_is_written_when_pyarrow_is_there(sweep):
    pytest.importorskip("pyarrow")
    paths = write_data(load([sweep.root]), sweep.root / "o")
    assert paths[-1] == sweep.root / "o" / "tidy.parquet"
    back = pd.read_parquet(paths[-1])
    assert len(back) == 42 and back["test_acc"].notna().sum() == 41


def test_metric_target_and_cell_options_change_the_numbers_labels_and_history_lines(sweep, capsys):
    out = sweep.root / "best"
    argv = [str(sweep.root), "--out", str(out), "--metric", "best_test", "--target", "model",
            "--cell", "method=ema,interval=1,strength=0.9", "--cell", "method=baseline"]
    assert main(argv) == 0
    points = pd.read_csv(out / "points.csv")
    cell = points[(points["strength"] == 0.99) & (points["interval"] == 0.5) & (points["schedule"] == "periodic")]
    assert cell[["target", "mean", "metric"]].values.tolist() == [["model", pytest.approx(81.0), "best_test"]]
    assert "best test accuracy (%) over epochs" in (out / "comparison.md").read_text()
    history = pd.read_csv(out / "history.csv")
    assert set(history["label"]) == {"EMA, decay 0.9, s = 1", "baseline"}
    assert history.loc[history["label"] == "baseline", "mean"].tolist() == pytest.approx([76.0, 77.0, 78.0])


def test_a_sweep_with_nothing_completed_says_so_and_draws_nothing(tmp_path, make_record, write_run, capsys):
    write_run(tmp_path / "0", make_record("ema", 0.5, 0.9, 0, {}, status="running"))
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "running: ema decay=0.9 periodic s=0.5 digits/small_cnn seed=0" in out
    assert out.rstrip().endswith("nothing to plot yet: no completed run has test_acc (--metric final)")
    assert sorted(p.suffix for p in (tmp_path / "analysis").iterdir() if p.suffix != ".parquet") == [".csv"] * 4 + [".md"]
    assert "- nothing to compare yet" in (tmp_path / "analysis" / "summary.md").read_text()


def test_list_prints_the_catalogue(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for entry in CATALOGUE:
        line = next(line for line in out.splitlines() if line.startswith(entry.name + " "))
        assert entry.kind in line and ", ".join(entry.sweeps) in line


def test_figure_draws_one_catalogue_entry(sweep, capsys):
    (sweep.root / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - +sweep=demo\n")
    assert main(["figure", "fig_ema_heatmap", str(sweep.root), "--out", str(sweep.root / "f")]) == 0
    out = capsys.readouterr().out
    assert "warning: fig_ema_heatmap is fed by sweep ema_grid, these records come from demo" in out
    back = pd.read_csv(sweep.root / "f" / "fig_ema_heatmap.csv")
    assert back[back["boxed"]][["strength", "interval"]].values.tolist() == [[0.99, 1.0]]
    assert f"wrote {sweep.root / 'f' / 'fig_ema_heatmap.pdf'}" in out


def test_the_demo_figure_draws_the_ema_and_the_raw_model(sweep, capsys):
    assert main(["figure", "fig_demo_interval", str(sweep.root)]) == 0
    plotted = pd.read_csv(sweep.root / "analysis" / "fig_demo_interval.csv")
    assert set(plotted["target"]) == {"ema", "model"}
    model = plotted[(plotted["target"] == "model") & (plotted["strength"] == 0.9) & (plotted["role"] == "spaced")]
    assert model["mean"].tolist() == pytest.approx([77.0, 76.0])


def test_a_table_entry_reads_baseline_runs_too(sweep, capsys):
    assert main(["figure", "table_dropout_ema_comparison", str(sweep.root)]) == 0
    table = pd.read_csv(sweep.root / "analysis" / "table_dropout_ema_comparison.csv")
    assert table["baseline_mean"].tolist() == pytest.approx([78.0, 78.0])


@pytest.mark.parametrize(("argv", "message"), [
    (["figure", "nope", "."], "error: unknown figure 'nope'; run `python -m analysis --list` to see the names"),
    (["{tmp}/missing"], "does not exist; pass the directory Hydra printed"),
    (["{tmp}"], "no result.json found under"),
    (["{file}"], "is a file, not a sweep directory; pass the directory that holds it"),
    (["figure", "fig_online_kd_interval", "{sweep}"], "needs online_kd runs and these records have none; produce them "
                                                       "with `python run.py -m +sweep=online_kd_curve`"),
    (["{sweep}", "--target", "teacher"], "no run evaluated target 'teacher'; use one of: ema, model"),
    (["{sweep}", "--cell", "colour=red"], "cannot read cell 'colour=red'"),
])
def test_user_errors_are_one_sentence_and_exit_2(sweep, tmp_path, capsys, argv, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "result.json").write_text("{}")
    argv = [a.format(tmp=empty, sweep=sweep.root, file=tmp_path / "result.json") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_no_traceback_reaches_the_user(tmp_path):
    done = subprocess.run([sys.executable, "-m", "analysis", str(tmp_path / "missing")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: sweep directory") and "Traceback" not in done.stderr


def test_a_command_line_without_directories_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "give at least one SWEEP_DIR" in capsys.readouterr().err


def test_bench_prints_its_line(capsys):
    assert main(["bench", "--records", "60"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("aggregate 60 records: ") and "(70 tidy rows, 60 points;" in line
