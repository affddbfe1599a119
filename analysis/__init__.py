"""Analysis of spacing-effect sweeps: run records in, tidy tables, figures and tables out.

Talks to training only through the files each run writes (``result.json``, ``history.csv``) and
never imports torch or ``spacing``. Entry points: ``python -m analysis`` (see ``__main__``),
``analysis.report.analyze`` / ``analysis.report.load`` from Python, and the Hydra multirun
callback ``analysis.callback.AnalyzeSweep``.
"""
