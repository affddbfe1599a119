"""``python -m spacing.bench gpu``: the GPU check: fp32's answers, no host syncs, whole-model compile, speed per factor, resume.

One command for a person with a GPU for about ten minutes. Each check prints one verdict line,
``PASS|FAIL|INFO <check> <case>: <numbers>``, and the command exits 1 if any check failed:

* ``bf16 parity``: every method (baseline, dropout, ema, online_kd at intervals 0, 1 and inf,
  self_kd) trains a short run on synthetic CIFAR-sized data at fp32 and at bf16; the main
  target's test accuracy must agree within a tolerance.
* ``host syncs``: one epoch of each method after a warm-up epoch, under
  ``torch.cuda.set_sync_debug_mode``; syncs may happen only at ``trainer.log_every`` steps and
  at the epoch's end.
* ``compile coverage``: a short run of each method with ``trainer.compile=true`` (short last
  batch and evaluation included): no graph break, no recompile-limit hit (either would raise).
* ``speed``: images/s of ResNet-18 per factor, as ``python -m spacing.bench train`` measures
  them; the runner at fp32 must keep at least 85 % of a plain loop over device-resident batches.
* ``resume``: a run checkpointed after its first epoch on the last visible GPU finishes in a new
  process that sees only one GPU (with one GPU, from a checkpoint rewritten in the old
  one-state-per-GPU format with two states).

``--quick`` (the default without CUDA) runs the same checks at toy sizes on the CPU, so CI keeps
the command working: parity, host reads (what would sync on a GPU), compile coverage with a
compiler-free backend and resume run for real; the speed lines are INFO (CPU timings prove nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch._dynamo.utils import counters

from spacing import runner
from spacing.bench.syncs import syncs_per_step
from spacing.bench.train import FACTORS, measure
from spacing.build import build_run
from spacing.checkpoint import load_data
from spacing.config import (
    AugmentConfig,
    BaselineConfig,
    Config,
    DropoutConfig,
    EmaConfig,
    MethodConfig,
    ModelConfig,
    OnlineKDConfig,
    SelfKDConfig,
    SyntheticDatasetConfig,
    TrainerConfig,
    to_dict,
)
from spacing.contract import CHECKPOINT_FILE, COMPLETED
from spacing.device import resolve_device
from spacing.methods import METHODS
from spacing.loop import Trainer
from spacing.record import RunRecord, read_result
from spacing.speed import compiling_with

CHECKS = ("parity", "syncs", "compile", "speed", "resume")


@dataclass(frozen=True)
class Case:
    """One method configuration the checks run."""

    label: str
    method: MethodConfig
    autoaugment: bool = False
    """AutoAugment and Cutout on top of crop and flip (as the self-KD sweep trains)."""

    @property
    def target(self) -> str:
        """The target a case is judged by: its method's main target."""
        return METHODS[self.method.name].main_target


CASES = (
    Case("baseline", BaselineConfig()),
    Case("dropout interval 0.5", DropoutConfig(interval=0.5, p=0.2)),
    Case("ema interval 0.5", EmaConfig(interval=0.5, decay=0.9, buffers="recompute")),
    Case("online_kd interval 0", OnlineKDConfig(interval=0.0)),
    Case("online_kd interval 1", OnlineKDConfig(interval=1.0)),
    Case("online_kd interval inf", OnlineKDConfig(interval=math.inf)),
    Case("self_kd interval 1", SelfKDConfig(interval=1.0), autoaugment=True),
)


@dataclass(frozen=True)
class Sizes:
    """How big each check's runs are: the real thing on a GPU, toys on the CPU."""

    model: str
    width: int | None
    image_size: int
    crop_padding: int
    cutout: int
    train_size: int
    test_size: int
    epochs: int
    batch_size: int
    short_train_size: int
    """Train size of the host-sync and compile-coverage runs: small, and leaving a short last batch."""
    tolerance: float
    """Largest bf16 - fp32 gap in test accuracy that passes (and, for an inexact resume, its gap)."""
    judge_parity_gap: bool
    """Whether the parity check judges the gap. Not at the quick mode's toy sizes, which keep the check
    working (both precisions must learn): there one run's accuracy is noise, fp32 alone gave 0.75,
    0.83 and 0.91 for self KD over three seeds; the parity evidence on CPU is
    tests/spacing/test_speed_precision.py."""
    log_every: int
    """trainer.log_every of the host-sync check: where syncs are allowed."""
    speed_model: str
    speed_width: int | None
    speed_steps: int
    speed_batch: int
    speed_backend: str


FULL = Sizes(
    model="resnet18", width=None, image_size=32, crop_padding=4, cutout=16, train_size=6000, test_size=2000, epochs=4, batch_size=128,
    short_train_size=2000, tolerance=0.04, judge_parity_gap=True, log_every=5,
    speed_model="resnet18", speed_width=None, speed_steps=100, speed_batch=128, speed_backend="inductor",
)  # fmt: skip
QUICK = Sizes(
    model="small_cnn", width=8, image_size=16, crop_padding=2, cutout=8, train_size=800, test_size=400, epochs=4, batch_size=50,
    short_train_size=300, tolerance=0.15, judge_parity_gap=False, log_every=4,
    speed_model="small_cnn", speed_width=4, speed_steps=3, speed_batch=16, speed_backend="eager",
)  # fmt: skip
NUM_CLASSES = 10
NOISE = 0.3
"""Pixel noise of the synthetic images (in [0, 1] units): learnable, yet not solved in an epoch."""


def config_for(case: Case, sizes: Sizes, device: torch.device, epochs: int | None = None, **trainer: Any) -> Config:
    """A run of `case` at `sizes` on `device` (synthetic 3-channel images, `NUM_CLASSES` classes)."""
    dataset = SyntheticDatasetConfig(
        name="synthetic",
        num_classes=NUM_CLASSES,
        train_size=sizes.train_size,
        test_size=sizes.test_size,
        image_size=sizes.image_size,
        channels=3,
        noise=NOISE,
        val_fraction=0.1,
        augment=AugmentConfig(
            crop_padding=sizes.crop_padding, hflip=True, autoaugment=case.autoaugment, cutout=sizes.cutout if case.autoaugment else 0
        ),
    )
    switches = {"batch_size": sizes.batch_size, "epochs": epochs or sizes.epochs, "device": str(device), "lr": 0.05, **trainer}
    return Config(
        dataset=dataset, model=ModelConfig(name=sizes.model, width=sizes.width), method=case.method, trainer=TrainerConfig(**switches)
    )


@dataclass
class Verdicts:
    """The verdict lines printed so far."""

    counts: dict[str, int] = field(default_factory=lambda: {"PASS": 0, "FAIL": 0, "INFO": 0})

    def say(self, verdict: str, check: str, detail: str) -> None:
        self.counts[verdict] += 1
        print(f"{verdict} {check}: {detail}", flush=True)

    def judge(self, ok: bool, check: str, detail: str) -> None:
        self.say("PASS" if ok else "FAIL", check, detail)

    @contextmanager
    def guard(self, check: str) -> Iterator[None]:
        """Within the block, an exception is the check's FAIL line (the next checks still run)."""
        try:
            yield
        except Exception as exc:
            message = (str(exc).strip().splitlines() or [""])[0][:200]
            self.judge(False, check, f"{type(exc).__name__}: {message}")


def trained(config: Config, out_dir: Path) -> dict[str, Any]:
    """The run record of `config` trained into `out_dir`."""
    return runner.run(config, out_dir)


def check_parity(sizes: Sizes, device: torch.device, tmp: Path, say: Verdicts) -> None:
    for case in CASES:
        check = f"bf16 parity {case.label}"
        with say.guard(check):
            accuracy = {}
            for precision in ("fp32", "bf16"):
                record = trained(config_for(case, sizes, device, precision=precision), tmp / f"parity-{case.label}-{precision}")
                accuracy[precision] = record["metrics"][case.target]["test_acc"]
            gap = abs(accuracy["bf16"] - accuracy["fp32"])
            unlearned = [precision for precision, value in accuracy.items() if value <= 2 / NUM_CLASSES]
            detail = f"{case.target} {accuracy['bf16']:.2f} vs {accuracy['fp32']:.2f} (fp32)"
            if unlearned:
                detail += f"; {' and '.join(unlearned)} did not learn (chance is {1 / NUM_CLASSES:.2f})"
            if sizes.judge_parity_gap:
                say.judge(not unlearned and gap <= sizes.tolerance, check, f"{detail}, tolerance {sizes.tolerance:.2f}")
            else:
                say.judge(not unlearned, check, f"{detail}, both learn (the gap is not judged at toy size)")


def check_syncs(sizes: Sizes, device: torch.device, tmp: Path, say: Verdicts) -> None:
    what = "syncs" if device.type == "cuda" else "host reads (each a sync on a GPU)"
    for case in CASES:
        check = f"host syncs {case.label}"
        with say.guard(check):
            config = config_for(case, sizes, device, epochs=2, log_every=sizes.log_every)
            config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, train_size=sizes.short_train_size))
            out_dir = tmp / f"syncs-{case.label}"
            trainer = Trainer(build_run(config), RunRecord(out_dir, to_dict(config)))
            trainer.train_epoch(0)  # warm-up: cuDNN autotuning syncs
            per_step = syncs_per_step(trainer, 1)
            steps = len(per_step)
            allowed = {s for s in range(steps) if (s + 1) % sizes.log_every == 0} | {steps - 1}
            points = [s for s, count in enumerate(per_step) if count]
            outside = [s for s in points if s not in allowed]
            detail = f"{len(points)} sync points in {steps} steps, {sum(per_step)} {what}; log_every {sizes.log_every}"
            if outside:
                detail += f"; outside log steps at steps {outside[:10]} ({[per_step[s] for s in outside[:10]]})"
            say.judge(not outside, check, detail)


class CountingBackend:
    """Wraps a torch.compile backend, counting the graphs it compiles and how often they run."""

    def __init__(self, backend: str) -> None:
        self.backend = torch._dynamo.lookup_backend(backend)
        self.graphs = 0
        self.calls = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
        self.graphs += 1
        compiled = self.backend(gm, example_inputs)

        def run_graph(*args: Any) -> Any:
            self.calls += 1
            return compiled(*args)

        return run_graph


def check_compile(sizes: Sizes, device: torch.device, tmp: Path, say: Verdicts, backend: str) -> None:
    for case in CASES:
        check = f"compile coverage {case.label}"
        torch._dynamo.reset()
        counters.clear()
        counting = CountingBackend(backend)
        config = config_for(case, sizes, device, epochs=2, compile=True)
        config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, train_size=sizes.short_train_size))
        with say.guard(check):  # a graph break (fullgraph) or a recompile-limit hit raises
            with compiling_with(counting), torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
                record = trained(config, tmp / f"compile-{case.label}")
            breaks = sum(counters["graph_break"].values())
            detail = f"{counting.graphs} graphs run {counting.calls} times, {breaks} graph breaks, 0 recompile-limit hits ({backend} backend)"
            say.judge(record["status"] == COMPLETED and breaks == 0 and counting.graphs > 0, check, detail)
    torch._dynamo.reset()


def check_speed(sizes: Sizes, device: torch.device, say: Verdicts) -> None:
    rates = []
    with compiling_with(sizes.speed_backend):
        for factor in FACTORS:
            rates.append(measure(factor, sizes.speed_model, sizes.speed_width, sizes.speed_steps, sizes.speed_batch, device))
    torch._dynamo.reset()
    model = f"{sizes.speed_model}, batch {sizes.speed_batch}, {device}"
    for (factor, rate), previous in zip(zip(FACTORS, rates), [rates[0], *rates]):
        say.say("INFO", f"speed {factor.label}", f"{rate:,.0f} images/s ({model}) {rate / previous:.2f}x")
    overhead = rates[1] / rates[0]
    detail = f"runner at fp32 {overhead:.2f}x the fp32 loop over device-resident batches (at least 0.85x); fast path {rates[-1] / rates[0]:.2f}x"
    if device.type == "cuda":
        say.judge(overhead >= 0.85, "speed data path", detail)
    else:
        say.say("INFO", "speed data path", f"{detail}; not judged on the CPU")


RESUME_CASE = CASES[4]  # online KD, spaced: two models, a replay queue and its RNG-dependent batches


class StopAfterFirstEpoch(Exception):
    """Raised right after the first epoch's checkpoint, as a pre-emption would end the process."""


def resume_config(sizes: Sizes, device: torch.device) -> Config:
    return config_for(RESUME_CASE, sizes, device, epochs=2)


def train_first_epoch(config: Config, out_dir: Path) -> None:
    """Train `config` into `out_dir` until its first checkpoint is written, then stop."""
    trainer = Trainer(build_run(config), RunRecord(out_dir, to_dict(config)))
    save = trainer.checkpoints.save

    def save_then_stop(state: dict[str, Any], epoch: int) -> None:
        save(state, epoch)
        raise StopAfterFirstEpoch

    trainer.checkpoints.save = save_then_stop  # type: ignore[method-assign]
    try:
        trainer.fit()
    except StopAfterFirstEpoch:
        return


def resume_in_new_process(out_dir: Path, quick: bool, device: str, visible: str | None) -> subprocess.CompletedProcess[str]:
    """``python -m spacing.bench gpu --resume-dir OUT_DIR --device DEVICE`` with CUDA_VISIBLE_DEVICES=`visible` (None: unchanged)."""
    env = dict(os.environ)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    command = [sys.executable, "-m", "spacing.bench", "gpu", "--resume-dir", str(out_dir), "--device", device]
    command += ["--quick"] if quick else []
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def check_resume(sizes: Sizes, device: torch.device, quick: bool, tmp: Path, say: Verdicts) -> None:
    target = RESUME_CASE.target
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    writer = torch.device("cuda", gpus - 1) if gpus else device
    visible = None  # the resumed process sees the first of this process's GPUs only
    if gpus:
        visible = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
    reference = trained(resume_config(sizes, writer), tmp / "resume-reference")["metrics"][target]["test_acc"]
    out_dir = tmp / "resume"
    train_first_epoch(resume_config(sizes, writer), out_dir)
    checkpoint = load_data(out_dir / CHECKPOINT_FILE)
    how = f"checkpoint written on {writer}"
    if gpus > 1:
        how += f" with {gpus} GPUs visible, resumed with 1"
    elif gpus:
        checkpoint["rng"]["cuda"] = [checkpoint["rng"]["cuda"], checkpoint["rng"]["cuda"].clone()]
        torch.save(checkpoint, out_dir / CHECKPOINT_FILE)
        how += " (1 GPU here: rewritten with 2 CUDA RNG states, the old format), resumed with 1 visible"
    else:
        how += ", resumed in a new process (no GPU: the GPU count is simulated by tests/spacing/test_seeding.py)"
    child = resume_in_new_process(out_dir, quick, device.type, visible)
    record = read_result(out_dir) or {}
    if child.returncode != 0 or record.get("status") != COMPLETED:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        say.judge(False, "resume", f"{how}; the resumed process failed (exit {child.returncode}): {tail[:200]}")
        return
    resumed = record["metrics"][target]["test_acc"]
    exact = device.type != "cuda"  # CPU runs are deterministic; GPU kernels (cuDNN autotuning) are not
    ok = resumed == reference if exact else abs(resumed - reference) <= sizes.tolerance
    same = "equal to" if exact else f"within {sizes.tolerance:.2f} of"
    say.judge(ok, "resume", f"{how}; {target} {resumed:.2f}, {same} the uninterrupted run's {reference:.2f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="toy sizes on the CPU (the default without CUDA): what CI runs")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated subset of {','.join(CHECKS)}")
    parser.add_argument(
        "--compile-backend", default="eager", help="backend of the coverage check (default eager: Dynamo's graphs, fast to make)"
    )
    parser.add_argument("--resume-dir", type=Path, default=None, help=argparse.SUPPRESS)  # the resume check's second process


def run_checks(args: argparse.Namespace) -> Verdicts:
    device = resolve_device(args.device)
    quick = args.quick or device.type != "cuda"
    sizes = QUICK if quick else FULL
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise SystemExit(f"error: unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"GPU check on {device} ({name}), {'quick' if quick else 'full'} sizes, torch {torch.__version__}", flush=True)
    say = Verdicts()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spacing-gpu-check-") as tmp:
        for check in checks:
            if check == "parity":
                check_parity(sizes, device, Path(tmp), say)
            elif check == "syncs":
                check_syncs(sizes, device, Path(tmp), say)
            elif check == "compile":
                check_compile(sizes, device, Path(tmp), say, args.compile_backend)
            elif check == "speed":
                with say.guard("speed"):
                    check_speed(sizes, device, say)
            elif check == "resume":
                with say.guard("resume"):
                    check_resume(sizes, device, quick, Path(tmp), say)
    counts = say.counts
    print(f"gpu check: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['INFO']} info, in {time.perf_counter() - started:.0f} s")
    return say


def run(args: argparse.Namespace) -> None:
    if args.resume_dir is not None:
        device = resolve_device(args.device)
        trained(resume_config(QUICK if args.quick or device.type != "cuda" else FULL, device), args.resume_dir)
        return
    if run_checks(args).counts["FAIL"]:
        sys.exit(1)

