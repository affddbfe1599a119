"""``python -m spacing.bench gpu --quick``: the GPU check's CPU mode runs every check and prints one verdict per check.

This is what keeps the command a person runs on a GPU from rotting: the same code paths, at toy
sizes, with the verdicts read back line by line.
"""

from __future__ import annotations

import re

import pytest

from spacing.bench import gpu
from spacing.bench.__main__ import main
from spacing.bench.train import FACTORS

VERDICT = re.compile(r"^(?P<verdict>PASS|FAIL|INFO) (?P<check>[^:]+): (?P<detail>.+)$")


@pytest.mark.slow
def test_quick_mode_prints_a_passing_verdict_per_check(capsys: pytest.CaptureFixture[str]) -> None:
    main(["gpu", "--quick", "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("GPU check on cpu (CPU), quick sizes")
    verdicts = [VERDICT.match(line) for line in lines[1:-1]]
    assert all(verdicts), [line for line, v in zip(lines[1:-1], verdicts) if not v]
    by_check = {v["check"]: v for v in verdicts}
    assert len(by_check) == len(verdicts)  # one line per check

    labels = [case.label for case in gpu.CASES]
    assert labels == [
        "baseline",
        "dropout interval 0.5",
        "ema interval 0.5",
        "online_kd interval 0",
        "online_kd interval 1",
        "online_kd interval inf",
        "self_kd interval 1",
    ]
    expected = [
        *(f"bf16 parity {label}" for label in labels),
        *(f"host syncs {label}" for label in labels),
        *(f"compile coverage {label}" for label in labels),
        *(f"speed {factor.label}" for factor in FACTORS),
        "speed data path",
        "resume",
    ]
    assert list(by_check) == expected
    judged = [v for v in verdicts if not v["check"].startswith("speed")]
    assert all(v["verdict"] == "PASS" for v in judged), [v.string for v in judged if v["verdict"] != "PASS"]
    assert all(v["verdict"] == "INFO" for v in verdicts if v["check"].startswith("speed"))  # CPU timings are not judged

    parity = by_check["bf16 parity online_kd interval 1"]["detail"]
    assert re.fullmatch(r"student \d\.\d\d vs \d\.\d\d \(fp32\), both learn \(the gap is not judged at toy size\)", parity), parity
    assert re.fullmatch(r"\d+ sync points in \d+ steps, \d+ host reads \(each a sync on a GPU\); log_every 4", by_check["host syncs self_kd interval 1"]["detail"])
    assert re.fullmatch(r"\d+ graphs run \d+ times, 0 graph breaks, 0 recompile-limit hits \(eager backend\)", by_check["compile coverage self_kd interval 1"]["detail"])
    assert re.search(r"\d[\d,]* images/s \(small_cnn, batch 16, cpu\) \d+\.\d\dx$", by_check["speed + compile"]["detail"])
    assert "resumed in a new process" in by_check["resume"]["detail"] and "equal to the uninterrupted run's" in by_check["resume"]["detail"]
    assert re.fullmatch(rf"gpu check: {len(judged)} passed, 0 failed, {len(FACTORS) + 1} info, in \d+ s", lines[-1])


def test_a_failed_check_fails_the_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def one_failure(args: object) -> gpu.Verdicts:
        verdicts = gpu.Verdicts()
        verdicts.judge(True, "bf16 parity baseline", "model 0.80 vs 0.81 (fp32), tolerance 0.04")
        verdicts.judge(False, "bf16 parity online_kd interval 1", "student 0.51 vs 0.81 (fp32), tolerance 0.04")
        return verdicts

    monkeypatch.setattr(gpu, "run_checks", one_failure)
    with pytest.raises(SystemExit) as info:
        main(["gpu", "--quick"])
    assert info.value.code == 1
    assert capsys.readouterr().out.splitlines() == [
        "PASS bf16 parity baseline: model 0.80 vs 0.81 (fp32), tolerance 0.04",
        "FAIL bf16 parity online_kd interval 1: student 0.51 vs 0.81 (fp32), tolerance 0.04",
    ]


def test_an_unknown_check_is_refused_with_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="unknown check\\(s\\) nope; choose from parity, syncs, compile, speed, resume"):
        main(["gpu", "--quick", "--device", "cpu", "--checks", "nope"])
