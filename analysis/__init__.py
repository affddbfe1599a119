"""Analysis of spacing-effect sweeps: run records in; gains with 95 % intervals, figures, tables and verdicts out.

Talks to training only through the files each run writes (``result.json``, ``history.csv``) and
never imports torch: of ``spacing`` it imports only the torch-free record contract
(:mod:`spacing.contract`: file names, statuses, columns, metric keys) and the list of keys that do
not change a run's numbers (:mod:`spacing.neutral`). The pipeline: ``records`` (find and parse) -> ``integrity``
(series, duplicates, impossible values) -> ``tidy`` (one row per run and target, means per cell)
-> ``gains`` (paired gains over massed and controls, selection on validation, never of a cell that
cannot measure its interval: ``measurable``) -> ``figures``, ``tables``, ``summary``; a study
(an optimising sweeper) ends with its best trial instead (``study``). Entry points: ``python -m analysis`` (see ``__main__``),
``analysis.report.analyze`` / ``analysis.report.load`` from Python, and the Hydra multirun
callback ``analysis.callback.AnalyzeSweep``.
"""
