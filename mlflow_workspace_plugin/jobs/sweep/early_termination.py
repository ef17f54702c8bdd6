"""Early termination of a sweep's trials: ``bandit``, ``median_stopping``, ``truncation_selection``.

Pure logic over the trials' primary-metric histories ``{trial_id: [v1, v2, ...]}`` in logging order
(JOBS.md §2.3). An *interval* is one report of the primary metric, not MLflow's ``step``; NaN reports
are ignored (they are not intervals). For trial *j* with values ``v_j[1..n_j]``:

- ``best_j(k)``: the best of ``v_j[1..k]`` (max when maximizing, min when minimizing).
- A policy judges a **running** trial at its *k*-th report when ``k >= delay_evaluation`` and
  ``k % evaluation_interval == 0`` (an interval of 0 counts as 1). Finished, failed and cancelled
  trials contribute data but are never cancelled.

Rules at interval *k* (peers: trials, running or not, with at least *k* reports):

- **bandit**: ``B(k)`` = the best ``best_i(k)`` over the peers (*j* included; best-so-far, the
  conservative reading). Maximize: cancel when ``best_j(k) < B(k) / (1 + slack_factor)`` or
  ``< B(k) - slack_amount``. Minimize (mirror): ``best_j(k) > B(k) * (1 + slack_factor)`` or
  ``> B(k) + slack_amount``.
- **median_stopping**: ``M(k)`` = median over the *other* peers of their running averages
  ``mean(v_i[1..k])``; cancel when ``best_j(k)`` is strictly worse than ``M(k)``; no other peer: continue.
- **truncation_selection**: population ``P`` = the peers (*j* included; with
  ``exclude_finished_jobs`` only running ones plus *j*), scored by their value *at* interval *k*;
  ``n_cut = floor(|P| * truncation_percentage / 100)``; cancel *j* when it is among the worst
  ``n_cut``. Ties favour the trial: *j* is cancelled only when fewer than ``n_cut`` other trials are
  as bad as or worse than it (so tied trials share one fate: both kept).

:class:`EarlyTerminator` remembers which intervals it already judged, so each (trial, interval) is
judged exactly once however often the controller polls; intervals missed between two polls are judged
in order, with the data available at that poll.
"""

from __future__ import annotations

import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

Goal = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Cancellation:
    """Why a trial is cancelled: the policy, the interval and the numbers that decided it."""

    trial_id: str
    policy: str
    interval: int
    value: float
    threshold: float
    peers: tuple[str, ...]
    reason: str

    def tags(self, prefix: str = "azureml.sweep.early_termination") -> dict[str, str]:
        """Tags for the cancelled child run (policy, interval, value, threshold, reason)."""
        return {
            f"{prefix}.policy": self.policy,
            f"{prefix}.interval": str(self.interval),
            f"{prefix}.value": repr(self.value),
            f"{prefix}.threshold": repr(self.threshold),
            f"{prefix}.reason": self.reason,
        }


def _clean(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if not math.isnan(float(v))]


def _best(values: Sequence[float], goal: Goal) -> float:
    return max(values) if goal == "maximize" else min(values)


def _worse(a: float, b: float, goal: Goal) -> bool:
    """True when ``a`` is strictly worse than ``b``."""
    return a < b if goal == "maximize" else a > b


def _fmt(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True)
class EarlyTerminationPolicy(ABC):
    """When a policy is applied (``evaluation_interval``, ``delay_evaluation``) and its rule."""

    evaluation_interval: int = 1
    delay_evaluation: int = 0
    name: ClassVar[str]

    def applies_at(self, interval: int) -> bool:
        """True when the policy judges a trial at its ``interval``-th report."""
        every = max(self.evaluation_interval, 1)
        return interval >= max(self.delay_evaluation, 1) and interval % every == 0

    @abstractmethod
    def check(
        self,
        trial_id: str,
        interval: int,
        histories: Mapping[str, Sequence[float]],
        goal: Goal,
        running: Collection[str] = (),
        metric: str = "primary metric",
    ) -> Cancellation | None:
        """The cancellation of ``trial_id`` at ``interval`` (1-based), or None to keep it.

        ``histories`` hold NaN-free values in report order; ``trial_id`` must have >= ``interval`` values.
        """

    def verify(self, cancellation: Cancellation, histories: Mapping[str, Sequence[float]], goal: Goal) -> bool:
        """True when ``cancellation`` follows from ``histories`` (e.g. read back from the store afterwards).

        Only the trials the decision saw (``cancellation.peers``) and the trial itself are used, and only
        their first ``interval`` reports, so values logged after the decision do not change the verdict.
        """
        seen = set(cancellation.peers) | {cancellation.trial_id}
        clean = {tid: _clean(values) for tid, values in histories.items() if tid in seen}
        if len(clean.get(cancellation.trial_id, ())) < cancellation.interval:
            return False
        again = self.check(cancellation.trial_id, cancellation.interval, clean, goal, seen)
        return again is not None and math.isclose(again.threshold, cancellation.threshold, rel_tol=1e-9)

    @staticmethod
    def _peers(histories: Mapping[str, Sequence[float]], interval: int) -> list[str]:
        return [tid for tid, values in histories.items() if len(values) >= interval]


@dataclass(frozen=True)
class BanditPolicy(EarlyTerminationPolicy):
    """Cancel trials whose best so far is not within the slack of the best trial's best so far."""

    slack_factor: float | None = None
    slack_amount: float | None = None
    name: ClassVar[str] = "bandit"

    def __post_init__(self) -> None:
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("bandit needs exactly one of slack_factor, slack_amount")

    def cutoff(self, leader_best: float, goal: Goal) -> float:
        """The worst best-so-far a trial may have and still continue."""
        sign = 1 if goal == "maximize" else -1
        if self.slack_factor is not None:
            factor = 1 + self.slack_factor
            return leader_best / factor if goal == "maximize" else leader_best * factor
        return leader_best - sign * self.slack_amount

    def check(
        self,
        trial_id: str,
        interval: int,
        histories: Mapping[str, Sequence[float]],
        goal: Goal,
        running: Collection[str] = (),
        metric: str = "primary metric",
    ) -> Cancellation | None:
        peers = self._peers(histories, interval)
        bests = {tid: _best(histories[tid][:interval], goal) for tid in peers}
        leader = peers[0]
        for tid in peers:
            if _worse(bests[leader], bests[tid], goal):
                leader = tid
        cut = self.cutoff(bests[leader], goal)
        own = bests[trial_id]
        if not _worse(own, cut, goal):
            return None
        slack = (f"/ (1 + slack_factor {self.slack_factor})" if goal == "maximize" else
                 f"* (1 + slack_factor {self.slack_factor})") if self.slack_factor is not None else (
                 f"{'-' if goal == 'maximize' else '+'} slack_amount {self.slack_amount}")
        reason = (
            f"bandit policy at interval {interval}: best {metric} so far {_fmt(own)} is "
            f"{'below' if goal == 'maximize' else 'above'} the cutoff {_fmt(cut)} = best of all trials "
            f"{_fmt(bests[leader])} (trial {leader}) {slack} ({goal})"
        )
        return Cancellation(trial_id, self.name, interval, own, cut, tuple(peers), reason)


@dataclass(frozen=True)
class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Cancel trials whose best so far is worse than the median of the other trials' running averages."""

    name: ClassVar[str] = "median_stopping"

    def check(
        self,
        trial_id: str,
        interval: int,
        histories: Mapping[str, Sequence[float]],
        goal: Goal,
        running: Collection[str] = (),
        metric: str = "primary metric",
    ) -> Cancellation | None:
        others = [tid for tid in self._peers(histories, interval) if tid != trial_id]
        if not others:
            return None
        median = statistics.median(statistics.fmean(histories[tid][:interval]) for tid in others)
        own = _best(histories[trial_id][:interval], goal)
        if not _worse(own, median, goal):
            return None
        reason = (
            f"median_stopping policy at interval {interval}: best {metric} so far {_fmt(own)} is worse than "
            f"{_fmt(median)}, the median of the running averages over intervals 1..{interval} of "
            f"{len(others)} other trial(s) ({goal})"
        )
        return Cancellation(trial_id, self.name, interval, own, median, tuple(others), reason)


@dataclass(frozen=True)
class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """Cancel the worst ``truncation_percentage`` % of the trials at each evaluated interval."""

    truncation_percentage: int = 0
    exclude_finished_jobs: bool = False
    name: ClassVar[str] = "truncation_selection"

    def __post_init__(self) -> None:
        if not 1 <= self.truncation_percentage <= 99:
            raise ValueError(f"truncation_percentage must be 1..99, got {self.truncation_percentage}")

    def check(
        self,
        trial_id: str,
        interval: int,
        histories: Mapping[str, Sequence[float]],
        goal: Goal,
        running: Collection[str] = (),
        metric: str = "primary metric",
    ) -> Cancellation | None:
        population = [
            tid for tid in self._peers(histories, interval)
            if not self.exclude_finished_jobs or tid == trial_id or tid in running
        ]
        n_cut = len(population) * self.truncation_percentage // 100
        if n_cut == 0:
            return None
        scores = {tid: histories[tid][interval - 1] for tid in population}
        own = scores[trial_id]
        as_bad_or_worse = sum(1 for tid in population if tid != trial_id and not _worse(own, scores[tid], goal))
        if as_bad_or_worse >= n_cut:
            return None
        worst_first = sorted(scores.values(), reverse=(goal == "minimize"))
        threshold = worst_first[n_cut - 1]
        reason = (
            f"truncation_selection policy at interval {interval}: {metric} {_fmt(own)} is among the worst "
            f"{n_cut} of {len(population)} trials (truncation_percentage {self.truncation_percentage}%, "
            f"cut at {_fmt(threshold)}; {goal})"
        )
        return Cancellation(trial_id, self.name, interval, own, threshold, tuple(population), reason)


@dataclass
class EarlyTerminator:
    """Applies a policy to the live metric histories; remembers which intervals it already judged."""

    policy: EarlyTerminationPolicy
    goal: Goal
    metric: str = "primary metric"
    _judged: dict[str, int] = field(default_factory=dict, repr=False)
    _cancelled: dict[str, Cancellation] = field(default_factory=dict, repr=False)

    @property
    def cancelled(self) -> dict[str, Cancellation]:
        """Every cancellation decided so far, by trial id."""
        return dict(self._cancelled)

    def evaluate(
        self, histories: Mapping[str, Sequence[float]], running: Collection[str]
    ) -> dict[str, Cancellation]:
        """New cancellations among ``running`` trials, given every trial's history (report order)."""
        clean = {tid: _clean(values) for tid, values in histories.items()}
        running_set = set(running)
        decided: dict[str, Cancellation] = {}
        for trial_id in clean:
            if trial_id not in running_set or trial_id in self._cancelled:
                continue
            reports = len(clean[trial_id])
            for interval in range(self._judged.get(trial_id, 0) + 1, reports + 1):
                self._judged[trial_id] = interval
                if not self.policy.applies_at(interval):
                    continue
                cancellation = self.policy.check(trial_id, interval, clean, self.goal, running_set, self.metric)
                if cancellation is not None:
                    decided[trial_id] = self._cancelled[trial_id] = cancellation
                    break
        return decided


__all__ = [
    "BanditPolicy",
    "Cancellation",
    "EarlyTerminationPolicy",
    "EarlyTerminator",
    "MedianStoppingPolicy",
    "TruncationSelectionPolicy",
]
