"""Hydra callback: analyse a sweep as soon as its multirun ends.

Wired in ``conf/config.yaml`` as ``hydra.callbacks.analyze._target_: analysis.callback.AnalyzeSweep``,
so ``python run.py -m +sweep=demo`` ends with its figures, tables and summary.md in
``<sweep dir>/analysis/``, their paths, and a verdict per method printed last. A study (an optimising
sweeper such as Optuna's, ``+tune=lr``) ends instead with its best trial and parameters
(:mod:`analysis.study`): it varied no interval to judge. The sweep has finished by then: a failing
analysis must not make it look failed, so nothing raises out of here; it prints a warning and the
command to retry instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class AnalyzeSweep(Callback):
    """Run the full report on ``hydra.sweep.dir`` into ``<sweep dir>/analysis`` at multirun end."""

    def __init__(self, metric: str = "final", target: str | None = None) -> None:
        self.metric = metric
        self.target = target

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Analyse, log one summary line, then print the report ending with the verdicts; never raise.

        Only the summary goes to logging: Hydra's own log handler also writes to the console, so
        logging every line as well would print each path twice. It is logged first so that the
        verdicts are the last thing the sweep prints.
        """
        sweep_dir: Path | str = "the sweep directory"
        try:
            from analysis import study
            from analysis.report import analyze

            sweep_dir = Path(str(config.hydra.sweep.dir))
            results = study.read_results(sweep_dir)
            if results is not None:
                objective = OmegaConf.select(config, "objective.metric", default=None) or "objective"
                print("\n".join(study.lines(sweep_dir, results, objective)))
                return
            out = sweep_dir / "analysis"
            result = analyze([sweep_dir], out, self.metric, self.target)
        except Exception as exc:  # noqa: BLE001 - the sweep itself succeeded; say so and how to retry
            warning = (f"warning: the sweep finished but its analysis failed ({type(exc).__name__}: {exc}); "
                       f"retry with `python -m analysis {sweep_dir} --metric {self.metric}`")
            print(warning)
            log.warning(warning)
            return
        log.info("analysis: %d files in %s; %d incomplete entries (see incomplete.csv)",
                 len(result.paths), out, len(result.analysis.incomplete))
        print("\n".join([f"analysis of {sweep_dir} ({self.metric} metric):", *result.lines()]))
