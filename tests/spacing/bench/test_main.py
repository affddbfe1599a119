"""``python -m spacing.bench``: argparse subcommands, each printing its ratios (``data``: one summary line;
``train``: one line per speed factor, each ending in its ratio).

Tiny sizes only: these check what the commands print, never how fast anything is.
"""

from __future__ import annotations

import re

import pytest

from spacing.bench.__main__ import SUBCOMMANDS, main

RATIO_LINE = re.compile(r"^[^:]+: \d+\.\dx$")
FACTOR_LINE = re.compile(r"^  (?P<label>.+?)\s+(?P<rate>[\d,]+) images/s  (?P<ratio>\d+\.\d\d)x$")


def test_help_lists_every_subcommand_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m spacing.bench")
    for name in SUBCOMMANDS:
        assert re.search(rf"^    {name}\s+\S", out, re.MULTILINE), name


def test_unknown_subcommand_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: python -m spacing.bench [-h] {{{','.join(SUBCOMMANDS)}}}")
    assert "invalid choice: 'nope'" in err


def test_data_bench_reports_both_pipelines_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "--images", "256", "--batch-size", "32", "--batches", "2", "--workers", "0", "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "(a) torchvision PIL DataLoader, 0 workers" in lines[-3] and "(b) batched on cpu" in lines[-2]
    assert RATIO_LINE.match(lines[-1]) and lines[-1].startswith("data pipeline, batched vs PIL DataLoader: ")


@pytest.mark.slow
def test_train_bench_prints_one_ratio_per_factor(capsys: pytest.CaptureFixture[str]) -> None:
    main(["train", "--steps", "2", "--batch-size", "4", "--device", "cpu", "--model", "small_cnn", "--width", "4", "--compile-backend", "eager"])
    lines = capsys.readouterr().out.strip().splitlines()
    factors = [FACTOR_LINE.match(line) for line in lines[-6:-1]]
    assert all(factors), lines
    assert [m["label"] for m in factors] == [
        "fp32 loop over device-resident batches",
        "runner at fp32",
        "+ bf16",
        "+ channels_last",
        "+ compile",
    ]
    rates = [float(m["rate"].replace(",", "")) for m in factors]
    assert factors[0]["ratio"] == "1.00"
    for previous, rate, match in zip(rates, rates[1:], factors[1:]):  # each ratio is to the line above
        # Rates print as whole images/s: the printed ratio lies within the ratios those roundings allow.
        low, high = (rate - 0.5) / (previous + 0.5), (rate + 0.5) / (previous - 0.5)
        assert low - 0.005 <= float(match["ratio"]) <= high + 0.005
    assert RATIO_LINE.match(lines[-1]) and lines[-1].startswith("runner fast path vs fp32 loop: ")
    assert "small_cnn train step, batch 4" in lines[0] and "compile backend eager" in lines[0]



FUSED_LINE = re.compile(r"^  (?P<label>EMA grid|KD curve): (?P<cells>\d+) cells, unfused (?P<unfused>[\d.]+) s, fused (?P<fused>[\d.]+) s, records equal$")
FUSED_RATIO = re.compile(r"^fused (?P<label>EMA grid|KD curve): (?P<ratio>\d+\.\d\d)x$")


@pytest.mark.slow
def test_fused_bench_checks_the_records_and_ends_with_the_two_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    main([
        "fused", "--dataset", "synthetic", "--width", "4", "--epochs", "1", "--batch-size", "64",
        "--ema-intervals", "0,1", "--decays", "0.9", "--kd-intervals", "1,inf", "--repeats", "1",
    ])
    lines = capsys.readouterr().out.strip().splitlines()
    measured = [FUSED_LINE.match(line) for line in lines[-4:-2]]
    ratios = [FUSED_RATIO.match(line) for line in lines[-2:]]
    assert all(measured) and all(ratios), lines
    assert [(m["label"], m["cells"]) for m in measured] == [("EMA grid", "2"), ("KD curve", "2")]
    for seconds, ratio in zip(measured, ratios):  # the ratio is unfused seconds / fused seconds, as printed above it
        assert ratio["label"] == seconds["label"]
        assert float(ratio["ratio"]) == pytest.approx(float(seconds["unfused"]) / float(seconds["fused"]), rel=0.02, abs=0.01)
