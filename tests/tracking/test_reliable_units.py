"""Reliable logging building blocks without a server: batch planning, journal locking, settings."""

from __future__ import annotations

import math
import multiprocessing
import os

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.reliable import batching, entries, settings
from mlflow_workspace_plugin.reliable.journal import Journal, journal_files, workspace_dir
from mlflow_workspace_plugin.uri import parse_workspace_uri

URI = ("azureml://127.0.0.1:1/mlflow/v1.0/subscriptions/s/resourceGroups/rg/providers/"
       "Microsoft.MachineLearningServices/workspaces/ws")


def _metrics(run_id: str, count: int, key: str = "m") -> list[entries.Entry]:
    return entries.from_batch(run_id, metrics=[Metric(key, float(i), 1000 + i, i) for i in range(count)])


def test_batches_respect_mlflow_limits():
    logged = (_metrics("r", 2500)
              + entries.from_batch("r", params=[Param(f"p{i}", "v") for i in range(250)])
              + entries.from_batch("r", tags=[RunTag(f"t{i}", "v") for i in range(150)]))
    batches = batching.plan(logged)
    for batch in batches:
        kinds = [e.kind for e in batch.entries]
        assert kinds.count("metric") <= 1000 and kinds.count("param") <= 100
        assert kinds.count("tag") <= 100 and len(kinds) <= 1000
    assert [e.seq for b in batches for e in b.entries] == [e.seq for e in logged]  # order kept
    assert sum(len(b.entries) for b in batches) == 2900


def test_same_key_twice_never_shares_a_request_and_run_updates_stand_alone():
    logged = (entries.from_batch("r", params=[Param("lr", "1")], tags=[RunTag("t", "a")])
              + entries.from_batch("r", params=[Param("lr", "2")], tags=[RunTag("t", "b")])
              + [entries.run_update("r", 3, 123, None)] + _metrics("r", 2))
    batches = batching.plan(logged)
    assert [[(e.kind, e.key) for e in b.entries] for b in batches] == [
        [("param", "lr"), ("tag", "t")], [("param", "lr"), ("tag", "t")], [("run_update", "")],
        [("metric", "m"), ("metric", "m")]]
    assert batches[2].is_update


def test_runs_are_batched_separately_keeping_each_runs_order():
    logged = [e for pair in zip(_metrics("a", 3), _metrics("b", 3), strict=True) for e in pair]
    batches = batching.plan(logged)
    assert [(b.run_id, [e.payload["step"] for e in b.entries]) for b in batches] == [
        ("a", [0, 1, 2]), ("b", [0, 1, 2])]


def test_large_values_split_by_request_size():
    big = "x" * 6000
    logged = entries.from_batch("r", params=[Param(f"p{i}", big) for i in range(100)],
                                tags=[RunTag(f"t{i}", big) for i in range(100)])
    batches = batching.plan(logged)
    assert len(batches) >= 2 and all(sum(e.size() for e in b.entries) <= batching.MAX_BYTES for b in batches)


def test_payloads_round_trip_exactly_including_nan_and_infinities():
    logged = entries.from_batch("r", metrics=[Metric("m", v, 5, 1) for v in (math.nan, math.inf, -math.inf, 0.1)])
    back = [entries.decode(1, e.run_id, e.kind, e.key, e.encoded()) for e in logged]
    values = [b.to_metric().value for b in back]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 0.1]
    with pytest.raises(MlflowException, match="is not a number"):
        entries.from_batch("r", metrics=[Metric("m", "high", 1, 0)])


def _hold_journal(directory: str, ready, release) -> None:  # runs in another process
    journal = Journal.create(__import__("pathlib").Path(directory), URI)
    journal.append(_metrics("r", 1))
    ready.set()
    release.wait(30)


def test_a_live_processs_journal_is_never_opened_as_an_orphan(tmp_path):
    directory = workspace_dir(parse_workspace_uri(URI), tmp_path)
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_journal, args=(str(directory), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        [path] = journal_files(directory)
        assert Journal.open_orphan(path) is None  # its owner is alive
    finally:
        release.set()
        holder.join(30)
    orphan = Journal.open_orphan(path)  # owner gone: lockable, one entry left
    assert orphan is not None and orphan.count() == 1 and orphan.meta("tracking_uri") == URI
    orphan.remove([e.seq for e in orphan.read()])
    assert orphan.close() is True
    assert journal_files(directory) == [] and not list(directory.glob("*.lock"))
    assert Journal.open_orphan(path) is None  # gone: never re-created by a replayer
    assert not path.exists()


def test_journal_files_are_private(tmp_path):
    journal = Journal.create(tmp_path / "j", URI)
    journal.append(_metrics("r", 1))
    assert oct(os.stat(journal.path).st_mode & 0o777) == "0o600"
    assert journal.close() is False  # not empty: kept for replay


def test_settings_are_validated(monkeypatch):
    monkeypatch.setenv(settings.FLUSH_TIMEOUT_ENV, "soon")
    with pytest.raises(MlflowException, match="MLFLOW_WORKSPACE_FLUSH_TIMEOUT='soon' is not allowed"):
        settings.flush_timeout()
    monkeypatch.setenv(settings.JOURNAL_SYNC_ENV, "off")
    with pytest.raises(MlflowException, match="NORMAL or FULL"):
        settings.journal_sync()
    monkeypatch.setenv(settings.ASYNC_ENV, "false")
    assert settings.async_enabled() is False
