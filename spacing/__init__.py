"""spacing: a harness for the spacing effect in neural-network training.

The library is organised as one training loop (:mod:`spacing.loop`) into which a *method*
(a strategy: baseline, dropout, EMA, KD, ...) is plugged; data, models and run records are
independent building blocks. Experiments are composed with Hydra (see ``conf/`` and ``run.py``).
"""

__version__ = "0.1.0"
