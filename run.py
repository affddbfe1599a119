"""Hydra entry point: compose the config, train one run into Hydra's output dir.

    python run.py                                   # one offline run on CPU
    python run.py method=baseline trainer.epochs=20 seed=1
    python run.py -m seed=0,1,2                     # a multirun sweep

The command line lives in spacing.cli (also installed as the ``spacing`` command); importing this
file imports no torch, so ``--help`` and shell completion answer at once.
"""

from spacing.cli import run_main
from spacing.compose import register_configs

__all__ = ["register_configs", "run_main"]

if __name__ == "__main__":
    run_main()
