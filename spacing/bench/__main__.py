"""``python -m spacing.bench <subcommand> [options]``: side-by-side measurements and the GPU check.

Each subcommand is a module with ``add_arguments(parser)`` and ``run(args)``, its docstring the
subcommand's help; adding one is one line in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS = {
    "data": "spacing.bench.data",
    "train": "spacing.bench.train",
    "replay": "spacing.bench.replay",
    "gpu": "spacing.bench.gpu",
    "fused": "spacing.bench.fused",
    "threads": "spacing.bench.threads",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spacing.bench",
        description="Throughput and memory benchmarks (ratios measured side by side in one process), and the GPU check.",
    )
    subcommands = parser.add_subparsers(dest="subcommand", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().splitlines()[0].split(": ", 1)[-1]
        sub = subcommands.add_parser(
            name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    importlib.import_module(SUBCOMMANDS[args.subcommand]).run(args)


if __name__ == "__main__":
    main()
