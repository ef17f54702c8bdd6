"""Choosing a sweep's best trial from its trials' primary-metric histories.

The service: "*the PrimaryMetricGoal governs whether the minimum or maximum of the primary metric is
used*", so a trial's **score is its best value over all its reports** (max when maximizing, min when
minimizing), not its last one (JOBS.md §2.3). Failed and canceled trials are candidates by default,
as on the service (``include_failed=True, include_canceled=True``): their reports happened.

Ties go to the trial that was sampled first (lowest ``index``). NaN reports are ignored; a trial with
no usable report has no score and is never the best. When no trial has a score, :func:`choose_best_trial`
returns None and the caller must say why (``primary_metric`` never logged).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Goal = Literal["minimize", "maximize"]
FAILED_STATUSES = frozenset({"FAILED", "Failed"})
CANCELED_STATUSES = frozenset({"KILLED", "Canceled", "CANCELED"})


@dataclass(frozen=True)
class TrialOutcome:
    """One trial as the controller sees it at the end: index, MLflow status and primary-metric reports."""

    trial_id: str
    index: int
    status: str
    values: Sequence[float]


@dataclass(frozen=True)
class BestTrial:
    """The winner: its id and index, its score (best report) and at which report (1-based) it happened."""

    trial_id: str
    index: int
    score: float
    interval: int


def trial_score(values: Sequence[float], goal: Goal) -> tuple[float, int] | None:
    """A trial's score (best report for ``goal``) and the 1-based report where it first occurs; None if none."""
    best: tuple[float, int] | None = None
    for position, raw in enumerate(values, start=1):
        value = float(raw)
        if math.isnan(value):
            continue
        if best is None or (value > best[0] if goal == "maximize" else value < best[0]):
            best = (value, position)
    return best


def choose_best_trial(
    trials: Iterable[TrialOutcome],
    goal: Goal,
    *,
    include_failed: bool = True,
    include_canceled: bool = True,
) -> BestTrial | None:
    """The trial with the best score for ``goal``; ties -> lowest index; None when no trial has a score."""
    if goal not in ("minimize", "maximize"):
        raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}")
    winner: BestTrial | None = None
    for trial in sorted(trials, key=lambda t: t.index):
        if not include_failed and trial.status in FAILED_STATUSES:
            continue
        if not include_canceled and trial.status in CANCELED_STATUSES:
            continue
        scored = trial_score(trial.values, goal)
        if scored is None:
            continue
        score, interval = scored
        better = winner is None or (score > winner.score if goal == "maximize" else score < winner.score)
        if better:
            winner = BestTrial(trial.trial_id, trial.index, score, interval)
    return winner


__all__ = ["BestTrial", "TrialOutcome", "choose_best_trial", "trial_score"]
