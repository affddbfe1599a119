"""``python -m analysis``: the full report, one catalogue figure, the catalogue, or the benchmark.

Errors a user can cause end in one sentence that names the fix and exit status 2, as argparse's
for a malformed command line and ``python run.py``'s for bad input; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.labels import METRICS
from spacing.contract import EXIT_USER_ERROR

USAGE = """\
python -m analysis SWEEP_DIR [SWEEP_DIR ...] [--out DIR] [--metric final|best_val|best_test] [--target NAME] [--cell SPEC]
       python -m analysis --list
       python -m analysis figure NAME SWEEP_DIR [SWEEP_DIR ...] [--out DIR] [--metric ...] [--target NAME] [--cell SPEC]
       python -m analysis bench [--records N]"""


def _parser(prog: str, description: str, with_name: bool = False) -> argparse.ArgumentParser:
    """The options every command that reads records shares (``figure`` takes a NAME first)."""
    parser = argparse.ArgumentParser(prog=prog, usage=USAGE, description=description)
    if with_name:
        parser.add_argument("name", metavar="NAME", help="a catalogue name (see --list)")
    parser.add_argument("dirs", nargs="*", type=Path, metavar="SWEEP_DIR",
                        help="sweep directories (Hydra multirun dirs) or run directories; searched at any depth")
    parser.add_argument("--out", type=Path, help="output directory (default: FIRST_SWEEP_DIR/analysis)")
    parser.add_argument("--metric", choices=list(METRICS), default="final",
                        help="final: test accuracy at the last epoch (default); best_val: test accuracy at the "
                             "best-validation epoch; best_test: best test accuracy over epochs (the paper's)")
    parser.add_argument("--target", help="evaluation target to analyse wherever a run has it "
                                         "(default: each method's main one, e.g. ema, student, ensemble)")
    parser.add_argument("--cell", action="append", default=None, metavar="SPEC",
                        help="a cell for the accuracy-vs-epoch figure, e.g. method=ema,interval=0.5 (repeatable; "
                             "default: each comparison row's massed and best spaced cell)")
    return parser


def _report(argv: list[str]) -> int:
    from analysis import catalogue, report

    parser = _parser("python -m analysis", "Curves, heatmaps and tables from spacing sweeps.")
    parser.add_argument("--list", action="store_true", help="print the figure catalogue and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(catalogue.listing())
        return 0
    if not args.dirs:
        parser.error("give at least one SWEEP_DIR (the directory `python run.py -m ...` printed), or --list")
    result = report.analyze(args.dirs, args.out or args.dirs[0] / "analysis", args.metric, args.target,
                            _cells(args.cell))
    print("\n".join(result.lines()))
    return 0


def _figure(argv: list[str]) -> int:
    from analysis import catalogue, completeness, report

    parser = _parser("python -m analysis figure", "Draw one figure or table of the catalogue (see --list).", True)
    args = parser.parse_args(argv)
    if not args.dirs:
        parser.error("give NAME and at least one SWEEP_DIR, e.g. figure fig_ema_heatmap multirun/ema_grid")
    item = catalogue.entry(args.name)
    analysis = report.load(args.dirs, args.metric, args.target)
    paths, warnings = catalogue.draw_entry(item, analysis, args.out or args.dirs[0] / "analysis", _cells(args.cell))
    print("\n".join([*completeness.summary(analysis.only(item.methods).incomplete), *warnings,
                     *(f"wrote {path}" for path in paths)]))
    return 0


def _cells(texts: list[str] | None) -> list[dict] | None:
    from analysis.report import parse_cell

    return None if texts is None else [parse_cell(text) for text in texts]


def _bench(argv: list[str]) -> int:
    from analysis import bench

    parser = argparse.ArgumentParser(prog="python -m analysis bench", description=bench.__doc__)
    parser.add_argument("--records", type=int, default=10_000, help="number of synthetic records (default 10000)")
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    print(bench.run(args.records))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the first word (``figure``, ``bench``), else the full report."""
    argv = sys.argv[1:] if argv is None else argv
    commands = {"figure": _figure, "bench": _bench}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return _report(argv)
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
