"""The data behind every line, band, marker, error bar and heatmap cell, read back from the Axes and the CSVs;
and what makes a figure printable: sizes, fonts, words, no Type 3 fonts, bands within 0-100."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from analysis import figures
from analysis.report import default_cells, history_curves, load

KD = "online KD, alpha 0.3"


def _by_gid(ax, gid):
    found = [line for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, [line.get_gid() for line in ax.lines]
    return found[0]


def _points(rows, **common):
    """A points frame as analysis.tidy.aggregate makes it."""
    base = {"method": "online_kd", "strength_name": "alpha", "strength": 0.3, "dataset": "cifar100",
            "model": "resnet18", "target": "student", "series": "", "control_kind": None, "control_interval": np.nan,
            "control_strength": np.nan, "control_schedule": None, "seeds": "", "hours": 1.0, "metric": "best_test"}
    return pd.DataFrame([{**base, **common, "schedule": schedule, "interval": interval, "mean": mean, "sd": sd, "n": n}
                         for schedule, interval, mean, sd, n in rows])


def _kd_points():
    """Online KD student: massed, three spaced intervals, the random schedule and offline KD."""
    return _points([("periodic", 0.0, 70.0, 1.0, 3), ("periodic", 0.5, 71.0, 0.5, 3), ("periodic", 1.5, 72.5, 0.2, 3),
                    ("periodic", 4.0, 71.5, np.nan, 1), ("random", 0.0, 71.2, 0.3, 3),
                    ("periodic", math.inf, 69.0, 0.4, 2)])


def _texts(fig):
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def test_the_line_starts_at_massed_and_the_axis_keeps_the_intervals_ratios():
    fig, plotted = figures.interval_figure(_kd_points(), "best_test")
    main, side = (ax for ax in fig.axes)
    line = _by_gid(main, f"line|{KD}")
    assert line.get_xdata().tolist() == [0.0, 0.5, 1.5, 4.0]
    assert line.get_ydata().tolist() == [70.0, 71.0, 72.5, 71.5]
    assert _by_gid(main, f"massed|{KD}").get_xdata().tolist() == [0.0]
    assert main.get_xscale() == "symlog"
    x = main.transData.transform([(v, 70.0) for v in (0.5, 1.5, 4.0)])[:, 0]
    assert (x[1] - x[0]) / (x[2] - x[1]) == pytest.approx(math.log(3) / math.log(4 / 1.5))  # log spacing
    zero = main.transData.transform([(0.0, 70.0)])[0, 0]
    assert zero < x[0] and main.get_xlim()[0] < 0.0  # massed at the left edge
    assert [t.get_text() for t in main.get_xticklabels()] == ["0", "0.5", "1.5", "4"]
    assert [t.get_text() for t in side.get_xticklabels()] == ["random", "offline"]
    assert (_by_gid(side, f"random|{KD}").get_xdata().tolist(), _by_gid(side, f"random|{KD}").get_ydata().tolist()) \
        == ([0.0], [71.2])
    assert _by_gid(side, f"offline|{KD}").get_ydata().tolist() == [69.0]
    assert plotted.set_index("role").loc["offline", ["axis", "x"]].tolist() == ["side", 1.0]


def test_n_is_in_the_legend_and_written_only_where_it_differs():
    fig, _ = figures.interval_figure(_kd_points(), "final")
    assert "n in the legend, written at a point where it differs" in figures.caption("interval", "final")
    assert f"{KD} (n = 3)" in [t.get_text() for t in fig.legends[0].get_texts()]
    n_texts = sorted(t.get_text() for ax in fig.axes for t in ax.texts)
    assert n_texts == ["n=1", "n=2"]


def test_bands_are_clipped_to_0_100_and_so_is_the_axis():
    points = _points([("periodic", 0.0, 98.0, 5.0, 3), ("periodic", 1.0, 99.5, 4.0, 3), ("periodic", 2.0, 2.0, 6.0, 3)])
    fig, plotted = figures.interval_figure(points, "final")
    ax = fig.axes[0]
    band = next(c for c in ax.collections if c.get_gid() == f"band|{KD}")
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 0.0 and ys.max() == 100.0
    assert ax.get_ylim()[0] >= 0.0 and ax.get_ylim()[1] <= 100.0
    assert plotted["band_high"].tolist() == [100.0, 100.0, 8.0] and plotted["band_low"].tolist() == [93.0, 95.5, 0.0]


def test_the_csv_holds_exactly_the_plotted_numbers(tmp_path):
    fig, plotted = figures.interval_figure(_kd_points(), "final")
    paths = figures.save(fig, plotted, tmp_path / "curve")
    assert [p.name for p in paths] == ["curve.png", "curve.pdf", "curve.csv"]
    back = pd.read_csv(paths[2])
    periodic = back[back["role"].isin(["massed", "spaced"])].sort_values("x")
    line = _by_gid(fig.axes[0], f"line|{KD}")
    assert periodic["mean"].tolist() == line.get_ydata().tolist() and periodic["x"].tolist() == line.get_xdata().tolist()
    band = next(c for c in fig.axes[0].collections if c.get_gid() == f"band|{KD}")
    assert set(band.get_paths()[0].vertices[:, 1].round(6)) == set(periodic[["band_low", "band_high"]].to_numpy().ravel().round(6))
    assert back.loc[back["role"] == "offline", "interval"].tolist() == [math.inf]


def test_a_control_is_drawn_hollow_at_the_interval_of_its_cell():
    control = _points([("periodic", 0.0, 70.4, 0.3, 3)], strength=0.2, control_kind="matched_horizon",
                      control_interval=1.5, control_strength=0.3, control_schedule="periodic")
    fig, plotted = figures.interval_figure(pd.concat([_kd_points(), control], ignore_index=True), "final")
    marker = _by_gid(fig.axes[0], f"control|{KD}")
    assert (marker.get_xdata().tolist(), marker.get_ydata().tolist()) == ([1.5], [70.4])
    assert marker.get_markerfacecolor() == "white"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "matched-horizon control, at its spaced cell's s" in legend and f"{KD} (n = 3)" in legend


def test_each_dataset_model_pair_gets_its_own_panel_in_a_two_column_figure():
    points = pd.concat([_kd_points(), _kd_points().assign(dataset="tiny_imagenet", mean=lambda f: f["mean"] - 20)])
    fig, _ = figures.interval_figure(points, "final")
    assert fig.get_figwidth() == figures.TWO_COLUMNS_IN
    assert [sub._suptitle.get_text() for sub in fig.subfigs] == ["cifar100 / resnet18", "tiny_imagenet / resnet18"]
    assert _by_gid(fig.subfigs[1].axes[0], f"line|{KD}").get_ydata().tolist() == [50.0, 51.0, 52.5, 51.5]


def _all_figures(sweep):
    analysis = load([sweep.root])
    curves = history_curves(analysis, default_cells(analysis.points, analysis.gains))
    return {
        "interval": figures.interval_figure(analysis.points, "final")[0],
        "gain": figures.gain_figure(analysis.gains, analysis.pairs, "final")[0],
        "heatmap": figures.heatmap_figure(analysis.points, analysis.gains, "final")[0],
        "history": figures.history_figure(curves, "Test accuracy vs epoch")[0],
    }


def test_every_figure_is_column_sized_with_text_of_at_least_7_pt_in_reader_words(sweep):
    drawn = _all_figures(sweep)
    for name, fig in drawn.items():
        assert fig.get_figwidth() in (figures.ONE_COLUMN_IN, figures.TWO_COLUMNS_IN), name
        fig.canvas.draw()
        for text in _texts(fig):
            assert text.get_fontsize() >= figures.MIN_FONT_PT, (name, text.get_text(), text.get_fontsize())
            for internal in ("[ema]", "metric final", "history.csv", "strength_name", "online_kd"):
                assert internal not in text.get_text(), (name, text.get_text())
    assert drawn["interval"].get_figwidth() == figures.ONE_COLUMN_IN  # one panel: one column
    assert drawn["heatmap"].get_figwidth() == figures.TWO_COLUMNS_IN


def test_pdfs_embed_truetype_fonts_not_type_3(sweep, tmp_path):
    for name, fig in _all_figures(sweep).items():
        pdf = figures.save(fig, pd.DataFrame(), tmp_path / name)[1].read_bytes()
        subtypes = set(re.findall(rb"/Subtype\s*/(\w+)", pdf))
        assert b"Type3" not in subtypes, name
        assert b"CIDFontType2" in subtypes or b"TrueType" in subtypes, (name, subtypes)


def test_gain_figure_error_bars_are_the_intervals_and_dots_the_per_seed_differences(sweep, tmp_path):
    analysis = load([sweep.root])
    fig, plotted = figures.gain_figure(analysis.gains, analysis.pairs, "final")
    main = fig.axes[0]
    label = "EMA, decay 0.99"
    bars = [line for line in main.lines if line.get_gid() == f"gain|massed|{label}"]
    assert sorted((b.get_xdata()[0], b.get_ydata()[0]) for b in bars) == [(0.5, pytest.approx(1.0)), (1.0, pytest.approx(3.0))]
    seeds = [line for line in main.lines if line.get_gid() == f"seeds|massed|{label}"]
    assert sorted(y for line in seeds for y in line.get_ydata()) == pytest.approx([1.0, 1.0, 1.0, 3.0, 3.0])
    assert _by_gid(main, f"best_on_val|{label}").get_xdata().tolist() == [1.0]
    assert main.get_xscale() == "symlog"
    back = pd.read_csv(figures.save(fig, plotted, tmp_path / "gain")[2])
    gains = back[(back["kind"] == "gain") & (back["label"] == label) & (back["schedule"] == "periodic")]
    row = analysis.gains[(analysis.gains["strength"] == 0.99) & (analysis.gains["interval"] == 1.0)].iloc[0]
    assert gains.sort_values("x")[["x", "mean", "low", "high", "n"]].values.tolist()[1] == \
        pytest.approx([1.0, row["mean"], row["low"], row["high"], row["n"]])
    assert len(back[back["kind"] == "seed"]) == len(analysis.pairs)


def test_heatmap_cells_and_the_gain_box_only_where_the_interval_excludes_0(sweep, tmp_path):
    analysis = load([sweep.root])
    fig, plotted = figures.heatmap_figure(analysis.points, analysis.gains, "final")
    mean_ax, gain_ax = (ax for ax in fig.axes if ax.images)
    assert mean_ax.get_title() == "EMA, digits / small_cnn: mean"
    # rows: decay 0.9, 0.99 (bottom to top); columns: interval 0, 0.5, 1
    np.testing.assert_allclose(mean_ax.images[0].get_array(), [[80.0, 82.0, 81.0], [83.0, 84.0, 85.5]])
    np.testing.assert_allclose(gain_ax.images[0].get_array(), [[0.0, 2.0, 1.0], [0.0, 1.0, 3.0]], atol=1e-9)
    (best,) = [p for p in gain_ax.patches if p.get_gid() == "best"]
    assert best.get_xy() == (1.5, 0.5)
    dashed = sorted(p.get_xy() for p in mean_ax.patches if p.get_gid() == "best_on_val")
    assert dashed == [(0.5, -0.5), (1.5, 0.5)]  # decay 0.9: s = 0.5; decay 0.99: s = 1
    assert "85.5\nn=2" in [t.get_text() for t in mean_ax.texts] and "84.0" in [t.get_text() for t in mean_ax.texts]
    assert "+3.0*" in [t.get_text() for t in gain_ax.texts]
    back = pd.read_csv(figures.save(fig, plotted, tmp_path / "heat")[2])
    assert back[back["boxed"]][["strength", "interval", "gain"]].values.tolist() == [[0.99, 1.0, pytest.approx(3.0)]]


def test_no_best_box_when_every_gain_is_negative_or_its_interval_includes_0(sweep):
    analysis = load([sweep.root])
    losing = analysis.gains.assign(mean=lambda f: f["mean"] - 10, low=lambda f: f["low"] - 10,
                                   high=lambda f: f["high"] - 10)
    fig, plotted = figures.heatmap_figure(analysis.points, losing, "final")
    assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == "best"] and not plotted["boxed"].any()
    unsure = analysis.gains.assign(low=-0.5)
    fig, plotted = figures.heatmap_figure(analysis.points, unsure, "final")
    assert not [p for ax in fig.axes for p in ax.patches if p.get_gid() == "best"]
    assert not any(t.get_text().endswith("*") for ax in fig.axes for t in ax.texts)


def test_a_missing_heatmap_cell_is_shown_as_missing(sweep):
    analysis = load([sweep.root])
    points = analysis.points[~((analysis.points["strength"] == 0.9) & (analysis.points["interval"] == 0.5))]
    fig, _ = figures.heatmap_figure(points, analysis.gains, "final")
    assert fig.axes[0].images[0].get_array().mask.tolist() == [[False, True, False], [False, False, False]]
    assert "missing" in [t.get_text() for t in fig.axes[0].texts]


def test_no_heatmap_without_two_strengths(sweep):
    analysis = load([sweep.root])
    assert figures.heatmap_figure(analysis.points[analysis.points["strength"] != 0.9], analysis.gains, "final") is None


def test_history_curves_average_seeds_per_epoch(sweep):
    analysis = load([sweep.root])
    curves = history_curves(analysis, [{"method": "ema", "strength": 0.99, "interval": 0.5, "schedule": "periodic"}])
    assert curves["label"].unique().tolist() == ["EMA, decay 0.99, s = 0.5"]
    assert curves["mean"].tolist() == pytest.approx([82.0, 83.0, 84.0])
    assert curves["sd"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert curves["n"].tolist() == [3, 3, 3]
    fig, plotted = figures.history_figure(curves, "t")
    line = _by_gid(fig.axes[0], "history|EMA, decay 0.99, s = 0.5")
    assert line.get_ydata().tolist() == pytest.approx([82.0, 83.0, 84.0])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["EMA, decay 0.99, s = 0.5 (n = 3)"]
    assert plotted["band_low"].tolist() == pytest.approx([81.0, 82.0, 83.0])


def test_default_history_cells_are_massed_the_interval_chosen_on_validation_and_baseline(sweep):
    analysis = load([sweep.root])
    labels = history_curves(analysis, default_cells(analysis.points, analysis.gains))["label"].unique().tolist()
    assert sorted(labels) == ["EMA, decay 0.9, massed (s = 0)", "EMA, decay 0.9, s = 0.5",
                              "EMA, decay 0.99, massed (s = 0)", "EMA, decay 0.99, s = 1", "baseline"]


def test_an_unreadable_history_is_skipped_with_a_warning(sweep, capsys):
    analysis = load([sweep.root])
    cell = {"method": "ema", "strength": 0.99, "interval": 0.5, "schedule": "periodic"}
    run = analysis.runs[(analysis.runs["strength"] == 0.99) & (analysis.runs["interval"] == 0.5)
                        & (analysis.runs["seed"] == 2)]["path"].iloc[0]
    (sweep.root / run / "history.csv").unlink()
    curves = history_curves(analysis, [cell])
    assert curves["n"].tolist() == [2, 2, 2]
    assert curves["mean"].tolist() == pytest.approx([81.5, 82.5, 83.5])
    assert "warning: skipped" in capsys.readouterr().err


def test_history_rows_beyond_the_record_s_epochs_are_ignored(tmp_path, make_record, write_run):
    run = write_run(tmp_path / "a", make_record("ema", 0.5, 0.9, 0, {"ema": 0.8}))
    with (run / "history.csv").open("a") as handle:  # killed after writing history.csv, before result.json
        handle.write("4,ema,0.5,0.9,,0.95,0.01,0.1\n")
    curves = history_curves(load([tmp_path]), [{"method": "ema"}])
    assert curves["epoch"].tolist() == [1, 2, 3] and curves["mean"].tolist() == pytest.approx([78.0, 79.0, 80.0])


def test_each_gain_panel_shows_only_its_own_seeds(tmp_path, make_record, write_run):
    for dataset, gain in (("digits", 0.02), ("cifar10", 0.05)):
        for seed in range(2):
            for interval, acc in ((0.0, 0.80), (0.5, 0.80 + gain + seed / 1000)):
                write_run(tmp_path / f"{dataset}-{interval}-{seed}",
                          make_record("ema", interval, 0.9, seed, {"ema": acc}, dataset=dataset))
    analysis = load([tmp_path])
    fig, _ = figures.gain_figure(analysis.gains, analysis.pairs, "final")
    for sub, expected in zip(fig.subfigs, ([5.0, 5.1], [2.0, 2.1])):  # panels sorted: cifar10, digits
        (dots,) = [line for line in sub.axes[0].lines if line.get_gid() == "seeds|massed|EMA, decay 0.9"]
        assert sorted(dots.get_ydata()) == pytest.approx(expected)


def test_an_unpaired_gain_is_marked_and_has_no_seed_dots(tmp_path, make_record, write_run):
    for seed in range(2):
        write_run(tmp_path / f"m{seed}", make_record("ema", 0.0, 0.9, seed, {"ema": 0.80 + seed / 100}))
        write_run(tmp_path / f"s{seed}", make_record("ema", 0.5, 0.9, seed + 5, {"ema": 0.83 + seed / 100}))
    analysis = load([tmp_path])
    fig, plotted = figures.gain_figure(analysis.gains, analysis.pairs, "final")
    assert [t.get_text() for t in fig.axes[0].texts] == ["unpaired"]
    assert plotted.loc[plotted["kind"] == "gain", "paired"].tolist() == ["no"] and (plotted["kind"] == "seed").sum() == 0


def test_massed_is_dashed_across_the_interval_and_side_axes():
    fig, _ = figures.interval_figure(_kd_points(), "final")
    for ax in fig.axes:  # the interval axis and the random / offline side axis
        (level,) = [line for line in ax.lines if line.get_gid() == f"massed_level|{KD}"]
        assert level.get_linestyle() == "--" and list(level.get_ydata()) == [70.0, 70.0]
    assert "massed (s = 0); dashed: its level" in [t.get_text() for t in fig.legends[0].get_texts()]


def _with_control(tmp_path, make_record, write_run, val=True):
    """EMA massed / s = 0.5 / s = 0.5's matched-horizon control, two seeds."""
    def metrics(acc):
        value = acc - 0.01 if val else None
        return {"ema": {"test_acc": acc, "best_test_acc": acc, "val_acc": value, "best_val_acc": value,
                        "test_acc_at_best_val": acc, "best_val_epoch": 3, "best_test_epoch": 3}}

    for seed in range(2):
        write_run(tmp_path / f"m{seed}", make_record("ema", 0.0, 0.9, seed, {}, metrics=metrics(0.80 + seed / 100)))
        write_run(tmp_path / f"s{seed}", make_record("ema", 0.5, 0.9, seed, {}, metrics=metrics(0.83 + seed / 50)))
        write_run(tmp_path / f"c{seed}", make_record("ema", 0.0, 0.95, seed, {}, metrics=metrics(0.84),
                                                     control={"kind": "matched_horizon", "interval": 0.5,
                                                              "strength": 0.9}))
    return load([tmp_path])


def test_gains_over_massed_and_over_the_control_are_two_series_with_their_own_colours(tmp_path, make_record,
                                                                                   write_run):
    analysis = _with_control(tmp_path, make_record, write_run)
    fig, _ = figures.gain_figure(analysis.gains, analysis.pairs, "final")
    main = fig.axes[0]
    assert main.get_ylabel() == "gain (points)"  # not "over massed": the triangles are over the control
    label = "EMA, decay 0.9"
    over_massed = _by_gid(main, f"seeds|massed|{label}")
    over_control = _by_gid(main, f"seeds|control:matched_horizon|{label}")
    assert over_massed.get_color() != over_control.get_color()
    assert _by_gid(main, f"gain|massed|{label}").get_color() == over_massed.get_color()
    assert _by_gid(main, f"gain|control:matched_horizon|{label}").get_color() == over_control.get_color()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [f"{label}: over massed", f"{label}: over its matched-horizon control",
                      "interval chosen on validation"]
    assert fig.get_suptitle() == "Gain over massed and over the control (final epoch)"


def test_without_validation_the_gain_legend_says_so_instead_of_a_ring(tmp_path, make_record, write_run):
    analysis = _with_control(tmp_path, make_record, write_run, val=False)
    fig, _ = figures.gain_figure(analysis.gains[analysis.gains["comparison"] == "massed"], analysis.pairs, "final")
    assert fig.axes[0].get_ylabel() == "gain over massed (points)"
    assert not [line for line in fig.axes[0].lines if (line.get_gid() or "").startswith("best_on_val")]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "interval chosen on validation" not in legend and "no validation split: none ringed" in legend


def test_titles_are_one_short_line_and_the_captions_go_to_summary_md(sweep):
    for name, fig in _all_figures(sweep).items():
        title = fig.get_suptitle()
        assert "\n" not in title and len(title) <= fig.get_figwidth() * figures.CHARS_PER_INCH, (name, title)
    from analysis.report import analyze

    analyze([sweep.root], sweep.root / "analysis")
    summary = (sweep.root / "analysis" / "summary.md").read_text()
    assert "## Figures" in summary
    assert f"- `gain_curve.png`: {figures.caption('gain', 'final')}" in summary
    assert f"- `interval_curve.png`: {figures.caption('interval', 'final')}" in summary
