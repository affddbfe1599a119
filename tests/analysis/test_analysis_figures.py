"""The data behind every line, band, marker and heatmap cell, read back from the Axes and the CSVs."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.report import default_cells, history_curves, load


def _by_gid(ax, gid):
    found = [line for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, [line.get_gid() for line in ax.lines]
    return found[0]


def _kd_points():
    """Online KD student: massed, three spaced intervals, the random schedule and offline KD."""
    rows = [("periodic", 0.0, 70.0, 1.0, 3), ("periodic", 0.5, 71.0, 0.5, 3), ("periodic", 1.5, 72.5, 0.2, 3),
            ("periodic", 4.0, 71.5, np.nan, 1), ("random", 0.0, 71.2, 0.3, 3), ("periodic", math.inf, 69.0, 0.4, 2)]
    return pd.DataFrame([
        {"method": "online_kd", "schedule": schedule, "interval": interval, "strength_name": "alpha", "strength": 0.3,
         "dataset": "cifar100", "model": "resnet18", "target": "student", "mean": mean, "sd": sd, "n": n,
         "seeds": "", "metric": "best_test"}
        for schedule, interval, mean, sd, n in rows
    ])


def test_interval_lines_bands_massed_reference_and_markers():
    fig, plotted = figures.interval_figure(_kd_points(), "best_test")
    ax = fig.axes[0]
    label = "online_kd alpha=0.3 [student]"
    spaced = _by_gid(ax, f"spaced|{label}")
    assert spaced.get_xdata().tolist() == [0.0, 1.0, 2.0]
    assert spaced.get_ydata().tolist() == [71.0, 72.5, 71.5]
    massed = _by_gid(ax, f"massed|{label}")
    assert massed.get_linestyle() == "--" and list(massed.get_ydata()) == [70.0, 70.0]
    assert (_by_gid(ax, f"random|{label}").get_xdata().tolist(), _by_gid(ax, f"random|{label}").get_ydata().tolist()) == ([3.0], [71.2])
    assert (_by_gid(ax, f"offline|{label}").get_xdata().tolist(), _by_gid(ax, f"offline|{label}").get_ydata().tolist()) == ([4.0], [69.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1.5", "4", "random", "offline"]
    band = next(c for c in ax.collections if c.get_gid() == f"band|{label}")
    ys = band.get_paths()[0].vertices[:, 1]
    assert (ys.min(), ys.max()) == (pytest.approx(70.5), pytest.approx(72.7))  # sd of n=1 is drawn as 0
    assert "best over epochs" in ax.get_ylabel()
    assert "metric best_test" in fig.get_suptitle()
    n_texts = sorted(t.get_text() for t in ax.texts)
    assert n_texts == sorted(["n=3", "n=3", "n=3", "n=1", "n=3", "n=2"])
    assert plotted.set_index("role").loc["offline", "x"] == 4.0
    assert plotted["role"].tolist().count("spaced") == 3


def test_interval_csv_holds_exactly_the_plotted_numbers(tmp_path):
    fig, plotted = figures.interval_figure(_kd_points(), "final")
    paths = figures.save(fig, plotted, tmp_path / "curve")
    assert [p.name for p in paths] == ["curve.png", "curve.pdf", "curve.csv"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    back = pd.read_csv(paths[2])
    spaced = back[back["role"] == "spaced"]
    line = _by_gid(fig.axes[0], "spaced|online_kd alpha=0.3 [student]")
    assert spaced["mean"].tolist() == line.get_ydata().tolist()
    assert spaced["x"].tolist() == line.get_xdata().tolist()
    assert back.loc[back["role"] == "offline", "interval"].tolist() == [math.inf]


def test_interval_figure_of_the_sweep_has_one_line_per_strength(sweep):
    fig, _ = figures.interval_figure(load([sweep.root]).points, "final")
    ax = fig.axes[0]
    assert _by_gid(ax, "spaced|ema decay=0.9 [ema]").get_ydata().tolist() == pytest.approx([82.0, 81.0])
    assert _by_gid(ax, "spaced|ema decay=0.99 [ema]").get_ydata().tolist() == pytest.approx([84.0, 85.5])
    assert _by_gid(ax, "massed|baseline [model]").get_ydata()[0] == pytest.approx(78.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "1", "random"]


def test_each_dataset_model_pair_gets_its_own_panel():
    points = pd.concat([_kd_points(), _kd_points().assign(dataset="tiny_imagenet", mean=lambda f: f["mean"] - 20)])
    fig, _ = figures.interval_figure(points, "final")
    assert [ax.get_title() for ax in fig.axes] == ["cifar100 / resnet18", "tiny_imagenet / resnet18"]
    assert _by_gid(fig.axes[1], "spaced|online_kd alpha=0.3 [student]").get_ydata().tolist() == [51.0, 52.5, 51.5]


def test_heatmap_cells_gain_and_best_cell(sweep, tmp_path):
    fig, plotted = figures.heatmap_figure(load([sweep.root]).points, "final")
    mean_ax, gain_ax = (ax for ax in fig.axes if ax.images)
    assert (mean_ax.get_title(), gain_ax.get_title()) == ("ema [ema], digits / small_cnn: mean",
                                                         "ema [ema], digits / small_cnn: gain over massed")
    # rows: decay 0.9, 0.99 (bottom to top); columns: interval 0, 0.5, 1
    np.testing.assert_allclose(mean_ax.images[0].get_array(), [[80.0, 82.0, 81.0], [83.0, 84.0, 85.5]])
    np.testing.assert_allclose(gain_ax.images[0].get_array(), [[0.0, 2.0, 1.0], [0.0, 1.0, 2.5]], atol=1e-9)
    for ax in (mean_ax, gain_ax):
        (best,) = [p for p in ax.patches if p.get_gid() == "best"]
        assert best.get_xy() == (1.5, 0.5)
    assert "85.5±0.7\nn=2" in [t.get_text() for t in mean_ax.texts]
    assert "+2.50" in [t.get_text() for t in gain_ax.texts]
    colour_bars = [ax for ax in fig.axes if not ax.images]
    assert [ax.get_ylabel() for ax in colour_bars] == ["test accuracy (%), final epoch", "gain over massed s = 0 (points)"]
    back = pd.read_csv(figures.save(fig, plotted, tmp_path / "heat")[2])
    best = back[back["best_mean"]]
    assert best[["strength", "interval", "mean", "n"]].values.tolist() == [[0.99, 1.0, 85.5, 2]]
    assert back[back["best_gain"]][["strength", "interval", "gain"]].values.tolist() == [[0.99, 1.0, pytest.approx(2.5)]]


def test_a_missing_heatmap_cell_is_shown_as_missing_and_best_gain_ignores_massed(sweep):
    points = load([sweep.root]).points
    points = points[~((points["strength"] == 0.9) & (points["interval"] == 0.5))]
    points.loc[points["interval"] > 0, "mean"] -= 10  # every spaced cell now loses to massed
    fig, plotted = figures.heatmap_figure(points, "final")
    assert fig.axes[0].images[0].get_array().mask.tolist() == [[False, True, False], [False, False, False]]
    assert "missing" in [t.get_text() for t in fig.axes[0].texts]
    best_gain = plotted[plotted["best_gain"]]
    assert best_gain[["strength", "interval"]].values.tolist() == [[0.99, 1.0]]  # a spaced cell, even if negative
    assert best_gain["gain"].iloc[0] == pytest.approx(-7.5)


def test_no_heatmap_without_two_strengths(sweep):
    points = load([sweep.root]).points
    assert figures.heatmap_figure(points[points["strength"] != 0.9], "final") is None


def test_history_curves_average_seeds_per_epoch(sweep):
    analysis = load([sweep.root])
    curves = history_curves(analysis, [{"method": "ema", "strength": 0.99, "interval": 0.5, "schedule": "periodic"}])
    assert curves["label"].unique().tolist() == ["ema decay=0.99 [ema] s=0.5"]
    assert curves["mean"].tolist() == pytest.approx([82.0, 83.0, 84.0])
    assert curves["sd"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert curves["n"].tolist() == [3, 3, 3]
    fig, _ = figures.history_figure(curves, "t")
    line = _by_gid(fig.axes[0], "history|ema decay=0.99 [ema] s=0.5")
    assert line.get_ydata().tolist() == pytest.approx([82.0, 83.0, 84.0])
    assert line.get_label() == "ema decay=0.99 [ema] s=0.5 (n=3)"


def test_default_history_cells_are_massed_best_spaced_and_baseline(sweep):
    analysis = load([sweep.root])
    labels = history_curves(analysis, default_cells(analysis.points))["label"].unique().tolist()
    assert sorted(labels) == ["baseline [model] s=0", "ema decay=0.9 [ema] s=0", "ema decay=0.9 [ema] s=0.5",
                              "ema decay=0.99 [ema] s=0", "ema decay=0.99 [ema] s=1"]


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
