"""``python -m spacing.bench``: a dispatcher over subcommands, each ending in one `<what>: <ratio>x` line.

Tiny sizes only: these check what the commands print, never how fast anything is.
"""

from __future__ import annotations

import re

import pytest

from spacing.bench.__main__ import SUBCOMMANDS, main

RATIO_LINE = re.compile(r"^[^:]+: \d+\.\dx$")


def test_unknown_subcommand_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == f"usage: python -m spacing.bench {{{','.join(SUBCOMMANDS)}}} [options]"


def test_data_bench_reports_both_pipelines_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "--images", "256", "--batch-size", "32", "--batches", "2", "--workers", "0", "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "(a) torchvision PIL DataLoader, 0 workers" in lines[-3] and "(b) batched on cpu" in lines[-2]
    assert RATIO_LINE.match(lines[-1]) and lines[-1].startswith("data pipeline, batched vs PIL DataLoader: ")


@pytest.mark.slow
def test_train_bench_reports_reference_and_runner_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    main(["train", "--steps", "1", "--batch-size", "4", "--workers", "0", "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "fast path: fp32, channels_last=False, compile=False" in lines[-4]
    assert "(a) fp32 loop over the PIL DataLoader" in lines[-3] and "(b) runner, fast path" in lines[-2]
    assert RATIO_LINE.match(lines[-1]) and lines[-1].startswith("ResNet-18 train step, runner fast path vs fp32 DataLoader loop: ")
