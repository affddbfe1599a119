"""When a spaced ensemble is refreshed, and how strongly it varies: one small pure object.

Every method asks the same two questions of a :class:`Schedule`:

* ``is_refresh(t)`` — is the ensemble refreshed after global step ``t`` (0-based)? EMA updates
  its shadow there, KD's replay rounds end there.
* ``multiplier(t, draw)`` — the variation strength at step ``t`` as a fraction of the configured
  strength (spaced dropout's rate is ``p * multiplier(t)``); a random schedule draws anew for
  every ``draw`` index (spaced dropout draws one per stage).

Cases (``S = max(1, int(interval * steps_per_epoch))`` steps):

=================  ==========================  ===============================
case               is_refresh(t)               multiplier(t)
=================  ==========================  ===============================
massed (0)         every step                  1
periodic           (t + 1) % S == 0            |sin(pi * t / S)|
random             after gaps ~ U{1..G} steps  U(0, 1), drawn per step and draw
offline (inf)      never                       1
=================  ==========================  ===============================

with ``G = max(1, int(random_max_gap * steps_per_epoch))``. Random draws depend only on
(seed, t, draw), so a schedule is reproducible and a resumed run sees the same refreshes.

A spaced schedule's long-run averages (``mean_gap``, ``mean_multiplier``) are what a control run
matches: the massed run that refreshes as strongly on average, or averages over as many steps.
"""

from __future__ import annotations

import bisect
import math

import numpy as np


class Schedule:
    def __init__(
        self,
        interval: float,
        kind: str,
        steps_per_epoch: int,
        seed: int = 0,
        random_max_gap: float = 0.4,
    ) -> None:
        if interval < 0 or math.isnan(interval):
            raise ValueError(f"interval must be >= 0 epochs, got {interval}")
        if kind not in ("periodic", "random"):
            raise ValueError(f"kind must be periodic or random, got {kind!r}")
        self.interval = interval
        self.kind = kind
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.max_gap = max(1, int(random_max_gap * steps_per_epoch))
        self._random_refreshes: list[int] = []
        self._gaps = np.random.default_rng([seed, 0x5EED])

    @property
    def massed(self) -> bool:
        return self.kind == "periodic" and self.interval == 0

    @property
    def offline(self) -> bool:
        return self.kind == "periodic" and math.isinf(self.interval)

    @property
    def period(self) -> float:
        """S in steps: 0 when massed, inf when offline; a spaced interval is at least one step."""
        if self.interval == 0 or math.isinf(self.interval):
            return self.interval
        return max(1, int(self.interval * self.steps_per_epoch))

    def is_refresh(self, step: int) -> bool:
        if self.kind == "random":
            while not self._random_refreshes or self._random_refreshes[-1] < step:
                last = self._random_refreshes[-1] if self._random_refreshes else -1
                self._random_refreshes.append(last + int(self._gaps.integers(1, self.max_gap + 1)))
            index = bisect.bisect_left(self._random_refreshes, step)
            return self._random_refreshes[index] == step
        if self.massed:
            return True
        if self.offline:
            return False
        return (step + 1) % int(self.period) == 0

    def refresh_steps(self, total_steps: int) -> list[int]:
        """Every refresh step in [0, total_steps)."""
        return [t for t in range(total_steps) if self.is_refresh(t)]

    def mean_gap(self) -> float:
        """Mean number of steps from one refresh to the next: 1 massed, S periodic, (G + 1) / 2 random."""
        if self.kind == "random":
            return (self.max_gap + 1) / 2
        if self.offline:
            return math.inf
        return max(1.0, float(self.period))

    def mean_multiplier(self, power: int = 1) -> float:
        """Long-run mean of ``multiplier(t) ** power``: exact over one period S when periodic, E[U^power] when random.

        Over a whole period the mean of |sin(pi t / S)| is cot(pi / 2S) / S (2 / pi as S grows) and
        that of its square 1/2 (S >= 2); U(0, 1) has E[U] = 1/2 and E[U^2] = 1/3.
        """
        if self.kind == "random":
            return 1.0 / (power + 1)
        if self.massed or self.offline:
            return 1.0
        period = int(self.period)
        return sum(abs(math.sin(math.pi * t / period)) ** power for t in range(period)) / period

    def multiplier(self, step: int, draw: int = 0) -> float:
        if self.kind == "random":
            return float(np.random.default_rng([self.seed, 0xD209, step, draw]).random())
        if self.massed or self.offline:
            return 1.0
        return abs(math.sin(math.pi * step / self.period))
