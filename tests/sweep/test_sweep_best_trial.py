"""Best trial: score = best report for the goal, ties to the first trial, failed/canceled included by default."""

from __future__ import annotations

import math

import pytest

from mlflow_workspace_plugin.jobs.sweep.best_trial import TrialOutcome, choose_best_trial, trial_score

TRIALS = [
    TrialOutcome("t0", 0, "FINISHED", [0.5, 0.7, 0.6]),   # best 0.7 at report 2, last 0.6
    TrialOutcome("t1", 1, "FINISHED", [0.65, 0.66]),      # last value beats t0's last, best does not
    TrialOutcome("t2", 2, "KILLED", [0.2, 0.3]),
    TrialOutcome("t3", 3, "FAILED", []),                  # never logged the metric
]


def test_score_is_the_best_report_not_the_last():
    best = choose_best_trial(TRIALS, "maximize")
    assert (best.trial_id, best.score, best.interval) == ("t0", 0.7, 2)
    assert trial_score([3, 1, 2], "minimize") == (1.0, 2)
    assert trial_score([], "minimize") is None


def test_minimize_picks_the_lowest():
    best = choose_best_trial(TRIALS, "minimize")
    assert (best.trial_id, best.score) == ("t2", 0.2)


def test_failed_and_canceled_are_candidates_unless_excluded():
    trials = [TrialOutcome("ok", 0, "FINISHED", [0.9]), TrialOutcome("killed", 1, "KILLED", [0.1]),
              TrialOutcome("failed", 2, "FAILED", [0.05])]
    assert choose_best_trial(trials, "minimize").trial_id == "failed"
    assert choose_best_trial(trials, "minimize", include_failed=False).trial_id == "killed"
    assert choose_best_trial(trials, "minimize", include_failed=False, include_canceled=False).trial_id == "ok"


def test_ties_go_to_the_first_sampled_trial_whatever_the_input_order():
    trials = [TrialOutcome("late", 5, "FINISHED", [0.4]), TrialOutcome("early", 2, "FINISHED", [0.1, 0.4])]
    assert choose_best_trial(trials, "maximize").trial_id == "early"


def test_no_metric_anywhere_gives_none_and_nan_is_ignored():
    assert choose_best_trial([TrialOutcome("a", 0, "FINISHED", []),
                              TrialOutcome("b", 1, "FAILED", [math.nan])], "maximize") is None
    best = choose_best_trial([TrialOutcome("a", 0, "FINISHED", [math.nan, 0.3])], "maximize")
    assert (best.score, best.interval) == (0.3, 2)
    with pytest.raises(ValueError, match="goal must be 'minimize' or 'maximize'"):
        choose_best_trial(TRIALS, "max")
