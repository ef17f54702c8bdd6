"""Early termination on hand-built metric tables; expected numbers written from JOBS.md's definitions."""

from __future__ import annotations

import math

import pytest

from mlflow_workspace_plugin.jobs.sweep.early_termination import (
    BanditPolicy,
    EarlyTerminator,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
)


def cancelled(policy, goal, histories, running=None) -> dict:
    running = set(histories) if running is None else running
    return EarlyTerminator(policy, goal, metric="acc").evaluate(histories, running)


# ------------------------------------------------------------------ bandit


def test_bandit_documented_example_slack_factor():
    # docs: best 0.8, slack_factor 0.2 => cut at 0.8 / 1.2 = 0.6667: 0.66 cancelled, 0.67 kept
    result = cancelled(BanditPolicy(slack_factor=0.2), "maximize", {"best": [0.8], "low": [0.66], "ok": [0.67]})
    assert set(result) == {"low"}
    cut = result["low"]
    assert cut.threshold == pytest.approx(0.8 / 1.2)
    assert cut.value == 0.66 and cut.interval == 1 and cut.policy == "bandit"
    assert "0.66" in cut.reason and "0.666667" in cut.reason and "trial best" in cut.reason
    assert cut.tags()["azureml.sweep.early_termination.policy"] == "bandit"


def test_bandit_slack_amount_maximize():
    result = cancelled(BanditPolicy(slack_amount=0.1), "maximize", {"a": [0.8], "b": [0.69], "c": [0.71]})
    assert set(result) == {"b"} and result["b"].threshold == pytest.approx(0.7)


def test_bandit_minimize_is_the_mirror():
    # best loss 0.5: slack_factor 0.2 => cut 0.6 (cancel above); slack_amount 0.05 => cut 0.55
    histories = {"a": [0.5], "b": [0.61], "c": [0.59], "d": [0.56]}
    assert set(cancelled(BanditPolicy(slack_factor=0.2), "minimize", histories)) == {"b"}
    assert set(cancelled(BanditPolicy(slack_amount=0.05), "minimize", histories)) == {"b", "c", "d"}


def test_bandit_compares_best_so_far_at_the_same_interval():
    # leader [0.5, 0.8]; j [0.45, 0.46] (maximize, slack_factor 0.2)
    # k=1: B=0.5, cut 0.4167, best_j 0.45 -> keep; k=2: B=0.8, cut 0.6667, best_j 0.46 -> cancel at 2
    result = cancelled(BanditPolicy(slack_factor=0.2), "maximize", {"lead": [0.5, 0.8], "j": [0.45, 0.46]})
    assert set(result) == {"j"} and result["j"].interval == 2
    # j's own best so far counts, not its last value: [0.9, 0.1] is not cut by a leader at 0.8
    assert cancelled(BanditPolicy(slack_factor=0.2), "maximize", {"lead": [0.5, 0.8], "j": [0.9, 0.1]},
                     running={"j"}) == {}


def test_bandit_leader_values_after_k_do_not_count():
    # at k=1 the leader has only 0.5 => cut 0.4167; its later 0.95 must not cut j, which has 1 report
    assert cancelled(BanditPolicy(slack_factor=0.2), "maximize", {"lead": [0.5, 0.95], "j": [0.45]}) == {}


def test_evaluation_interval_and_delay():
    # interval 2, delay 4: judged at k = 4, 6, 8 ...; j is hopeless from k=1 but first cut at 4
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=2, delay_evaluation=4)
    assert [k for k in range(1, 9) if policy.applies_at(k)] == [4, 6, 8]
    histories = {"lead": [1.0] * 5, "j": [0.1, 0.1, 0.1]}
    terminator = EarlyTerminator(policy, "maximize")
    assert terminator.evaluate(histories, {"lead", "j"}) == {}
    histories["j"].append(0.1)
    result = terminator.evaluate(histories, {"lead", "j"})
    assert set(result) == {"j"} and result["j"].interval == 4


def test_zero_interval_counts_as_one():
    policy = MedianStoppingPolicy(evaluation_interval=0, delay_evaluation=0)
    assert [k for k in range(1, 4) if policy.applies_at(k)] == [1, 2, 3]


def test_finished_trials_give_data_but_are_never_cancelled():
    histories = {"done": [0.9, 0.9], "worse_done": [0.1, 0.1], "run": [0.2, 0.3]}
    result = cancelled(BanditPolicy(slack_factor=0.2), "maximize", histories, running={"run"})
    assert set(result) == {"run"} and result["run"].interval == 1
    assert result["run"].peers == ("done", "worse_done", "run")


# ------------------------------------------------------------------ median stopping


MEDIAN_TABLE = {"A": [1, 2, 3], "B": [2, 4, 6], "C": [3, 3, 3]}  # running averages at k=3: 2, 4, 3 -> median 3


def test_median_stopping_at_the_median_of_running_averages():
    policy = MedianStoppingPolicy(delay_evaluation=3)
    result = cancelled(policy, "maximize", {**MEDIAN_TABLE, "j": [1, 2, 2.9]}, running={"j"})
    assert set(result) == {"j"}
    assert result["j"].threshold == 3 and result["j"].value == 2.9 and result["j"].interval == 3
    # best so far 3 equals the median: not worse, kept
    assert cancelled(policy, "maximize", {**MEDIAN_TABLE, "j": [1, 3, 2]}, running={"j"}) == {}


def test_median_stopping_minimize_and_excludes_the_trial_itself():
    policy = MedianStoppingPolicy(delay_evaluation=3)
    # minimize: j's best so far 3.5 > median 3 -> cancel; 2.5 -> keep
    assert set(cancelled(policy, "minimize", {**MEDIAN_TABLE, "j": [4, 3.5, 5]}, running={"j"})) == {"j"}
    assert cancelled(policy, "minimize", {**MEDIAN_TABLE, "j": [4, 2.5, 5]}, running={"j"}) == {}
    # two others with running averages 2 and 4 (median 3); j = [3.2]*3: median with j would be 3.2 -> kept,
    # without j (the rule) 3 -> cancelled when minimizing
    two = {"A": [1, 2, 3], "B": [2, 4, 6], "j": [3.2, 3.2, 3.2]}
    assert set(cancelled(policy, "minimize", two, running={"j"})) == {"j"}


def test_median_stopping_only_compares_trials_that_reached_k():
    policy = MedianStoppingPolicy()
    result = cancelled(policy, "maximize", {"j": [0.0, 0.0, 0.0], "other": [1.0]}, running={"j"})
    # k=1: other's average 1.0 > best_j 0 -> cancelled at interval 1, with other as the only peer
    assert result["j"].interval == 1 and result["j"].peers == ("other",)
    # alone from interval 2 on (delay 2): nobody to compare with -> continue
    assert cancelled(MedianStoppingPolicy(delay_evaluation=2), "maximize",
                     {"j": [0.0, 0.0, 0.0], "other": [1.0]}, running={"j"}) == {}


# ------------------------------------------------------------------ truncation selection


FIVE = {"a": [0.9], "b": [0.8], "c": [0.7], "d": [0.6], "e": [0.5]}


@pytest.mark.parametrize(
    ("percentage", "expected"), [(20, {"e"}), (40, {"d", "e"}), (19, set()), (99, {"b", "c", "d", "e"})]
)
def test_truncation_cuts_floor_of_the_percentage(percentage, expected):
    # n_cut = floor(5 * p / 100): 20% -> 1, 40% -> 2, 19% -> 0, 99% -> 4
    assert set(cancelled(TruncationSelectionPolicy(truncation_percentage=percentage), "maximize", FIVE)) == expected


def test_truncation_minimize_and_uses_the_value_at_k_not_the_best():
    histories = {"a": [1.0, 0.2], "b": [0.1, 0.5], "c": [0.3, 0.3], "d": [0.4, 0.4], "e": [0.5, 0.1]}
    # minimize, 20%: at k=1 worst is a (1.0); b's k=2 value 0.5 is then the worst at k=2
    result = cancelled(TruncationSelectionPolicy(truncation_percentage=20), "minimize", histories)
    assert set(result) == {"a", "b"}
    assert result["a"].interval == 1 and result["b"].interval == 2 and result["b"].value == 0.5


def test_truncation_ties_keep_both():
    tied = {"a": [0.9], "b": [0.8], "c": [0.7], "d": [0.5], "e": [0.5]}
    assert cancelled(TruncationSelectionPolicy(truncation_percentage=20), "maximize", tied) == {}
    assert set(cancelled(TruncationSelectionPolicy(truncation_percentage=60), "maximize", tied)) == {"c", "d", "e"}


def test_truncation_exclude_finished_jobs_shrinks_the_population():
    # finished f1, f2 are the worst; with them the 5-trial population cuts 1 (a finished one, never
    # cancelled); without them 3 running trials at 40% -> floor(1.2) = 1 -> the worst running, r3
    histories = {"r1": [0.9], "r2": [0.8], "r3": [0.7], "f1": [0.1], "f2": [0.2]}
    running = {"r1", "r2", "r3"}
    assert cancelled(TruncationSelectionPolicy(truncation_percentage=40), "maximize", histories, running) == {}
    excl = TruncationSelectionPolicy(truncation_percentage=40, exclude_finished_jobs=True)
    assert set(cancelled(excl, "maximize", histories, running)) == {"r3"}


# ------------------------------------------------------------------ the evaluator


def test_each_interval_is_judged_once_and_missed_intervals_are_caught_up():
    policy = TruncationSelectionPolicy(truncation_percentage=50, evaluation_interval=5)
    terminator = EarlyTerminator(policy, "maximize")
    histories = {"a": [1.0] * 4, "b": [0.0] * 4}
    assert terminator.evaluate(histories, {"a", "b"}) == {}  # nothing at k<5
    histories = {"a": [1.0] * 7, "b": [0.0] * 7}  # both jumped past k=5 between two polls
    result = terminator.evaluate(histories, {"a", "b"})
    assert set(result) == {"b"} and result["b"].interval == 5
    assert terminator.evaluate(histories, {"a", "b"}) == {}  # no second verdict
    assert set(terminator.cancelled) == {"b"}


def test_nan_reports_are_not_intervals():
    histories = {"lead": [0.8], "j": [math.nan, 0.5]}
    result = cancelled(BanditPolicy(slack_factor=0.2), "maximize", histories)
    assert set(result) == {"j"} and result["j"].interval == 1 and result["j"].value == 0.5


def test_policy_field_validation():
    with pytest.raises(ValueError, match="exactly one of slack_factor, slack_amount"):
        BanditPolicy()
    with pytest.raises(ValueError, match="exactly one of slack_factor, slack_amount"):
        BanditPolicy(slack_factor=0.1, slack_amount=0.1)
    with pytest.raises(ValueError, match="truncation_percentage must be 1..99"):
        TruncationSelectionPolicy(truncation_percentage=100)


@pytest.mark.parametrize(
    "policy",
    [BanditPolicy(slack_factor=0.2), MedianStoppingPolicy(delay_evaluation=2),
     TruncationSelectionPolicy(truncation_percentage=34, exclude_finished_jobs=True)],
    ids=["bandit", "median", "truncation"],
)
def test_a_decision_can_be_verified_later_from_the_full_histories(policy):
    terminator = EarlyTerminator(policy, "maximize")
    live = {"a": [0.9, 0.92], "b": [0.5, 0.55], "c": [0.8, 0.85]}
    decided = terminator.evaluate(live, {"a", "b", "c"})
    assert set(decided) == {"b"}
    # later: b logged once more before it was killed; d started afterwards and went far past interval 2
    stored = {"a": [0.9, 0.92, 0.95], "b": [0.5, 0.55, 0.99], "c": [0.8, 0.85, 0.86], "d": [0.1, 0.1, 0.1]}
    assert policy.verify(decided["b"], stored, "maximize")
    stored["b"] = [0.89, 0.95]  # a history that could not have led to the decision
    assert not policy.verify(decided["b"], stored, "maximize")
