"""``python -m spacing.bench <subcommand> [options]``: side-by-side throughput measurements.

Each subcommand is a module with ``main(argv)``; adding one is one line in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "data": "spacing.bench.data",
    "train": "spacing.bench.train",
    "replay": "spacing.bench.replay",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SUBCOMMANDS:
        print(f"usage: python -m spacing.bench {{{','.join(SUBCOMMANDS)}}} [options]", file=sys.stderr)
        sys.exit(2)
    importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
