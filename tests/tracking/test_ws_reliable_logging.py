"""Reliable logging against the real server behind the front door, with injected faults.

Every assertion about data reads the server afterwards over plain http at its own port (and its
SQLite file for row counts), never through the code under test.
"""

from __future__ import annotations

import threading
import time

import mlflow
import pytest
from azure.core.credentials import AccessToken
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ws_checks import assert_exactly, history, journal_files, run_data

LOG_BATCH = "/runs/log-batch"


@pytest.fixture
def fast_retries(monkeypatch):
    """Short backoff cap and flush limit so fault tests stay quick (the defaults are 10 s / 30 s)."""
    monkeypatch.setenv("MLFLOW_WORKSPACE_RETRY_MAX_WAIT", "1")
    monkeypatch.setenv("MLFLOW_WORKSPACE_FLUSH_TIMEOUT", "60")


def _start(name: str) -> str:
    mlflow.set_experiment(name)
    return mlflow.start_run().info.run_id


def test_log_calls_return_without_waiting_for_the_network(workspace, fast_retries):
    run_id = _start("reliable-fast")
    # every batch takes > 5 s to answer: calls that waited on the network could not all return
    # before one answer came back (a behaviour bound with a wide margin, not a speed claim)
    slow = workspace.door.faults.delay(5.0, path=LOG_BATCH)
    started = time.perf_counter()
    for step in range(1000):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_param("lr", 0.01)
    mlflow.set_tag("phase", "train")
    returned = time.perf_counter() - started
    assert returned < 5.0, f"1,000 log calls took {returned:.2f}s with a 5 s network delay"
    mlflow.end_run()
    assert slow.fired >= 1
    assert_exactly(workspace.server, run_id, "loss", 1000)
    run = run_data(workspace.server, run_id)
    assert run["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"lr": "0.01"}
    assert journal_files(workspace.client_dir.parent / "workspace-home") == []  # drained: deleted


def test_5000_points_while_the_server_restarts_twice(workspace, fast_retries):
    run_id = _start("reliable-restarts")
    restarts_done = threading.Event()
    failures: list[BaseException] = []

    def restart_twice() -> None:
        try:
            for _ in range(2):
                time.sleep(0.5)
                workspace.server.restart(down_seconds=1.0)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            restarts_done.set()

    restarter = threading.Thread(target=restart_twice, daemon=True)
    restarter.start()
    slowest = 0.0
    step = 0
    while step < 5000:
        started = time.perf_counter()
        mlflow.log_metric("acc", step / 5000, step=step)
        slowest = max(slowest, time.perf_counter() - started)
        step += 1
        if step % 50 == 0 and not restarts_done.is_set():
            time.sleep(0.05)  # spread the logging over the restarts
    restarter.join(180)
    assert not failures, failures
    assert restarts_done.is_set()
    assert slowest < 0.5, f"a log call blocked for {slowest:.2f}s during restarts"
    mlflow.end_run()
    assert_exactly(workspace.server, run_id, "acc", 5000)
    assert workspace.door.stats["upstream_errors"] > 0  # the server really was down meanwhile


def test_lost_acknowledgements_are_resent_without_duplicates(workspace, fast_retries):
    """The server applies a batch but the answer is lost: the client re-sends the same points
    (same key, timestamp, step, value) and the server's primary key makes that a no-op."""
    run_id = _start("reliable-lost-ack")
    lost = workspace.door.faults.lose_ack(path=LOG_BATCH, times=3)
    for step in range(3000):
        mlflow.log_metric("loss", 0.5, step=step)
    mlflow.end_run()
    assert lost.fired == 3
    assert_exactly(workspace.server, run_id, "loss", 3000)


def test_429_storm_slows_the_client_down_and_nothing_is_lost(workspace, fast_retries):
    run_id = _start("reliable-429")
    storm = workspace.door.faults.throttle(retry_after=1.0, path=LOG_BATCH, times=8)
    started = time.perf_counter()
    for step in range(2000):
        mlflow.log_metric("loss", 1.0, step=step)
    assert time.perf_counter() - started < 8 * 1.0  # the calls returned while the storm went on
    mlflow.end_run()
    elapsed = time.perf_counter() - started
    assert storm.fired == 8
    assert elapsed >= 8 * 1.0 * 0.9, f"Retry-After not honoured: done in {elapsed:.2f}s"
    assert_exactly(workspace.server, run_id, "loss", 2000)


def test_503s_dropped_connections_and_slow_answers_are_ridden_out(workspace, fast_retries):
    run_id = _start("reliable-mixed")
    faults = workspace.door.faults
    rules = [faults.unavailable(path=LOG_BATCH, times=3, retry_after=0.2), faults.drop(path=LOG_BATCH, times=3),
             faults.delay(0.5, path=LOG_BATCH, times=2)]
    for step in range(1500):
        mlflow.log_metric("m", float(step), step=step)
        if step % 300 == 0:
            mlflow.set_tag("progress", str(step))
    mlflow.end_run()
    assert [r.fired for r in rules] == [3, 3, 2]
    assert_exactly(workspace.server, run_id, "m", 1500)
    tags = {t["key"]: t["value"] for t in run_data(workspace.server, run_id)["data"]["tags"]}
    assert tags["progress"] == "1200"  # the last value wins: order per key kept


class _RotatingCredential:
    def __init__(self) -> None:
        self.issued = 0

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.issued += 1
        return AccessToken(f"rotating-{self.issued}", int(time.time() + 3600))


def test_token_expiry_is_refreshed_once_without_failing(workspace, monkeypatch, fast_retries):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    credential = _RotatingCredential()
    mlflow.set_tracking_uri(workspace.uri)
    from mlflow_workspace_plugin import auth

    auth.register_credential(workspace.uri, credential)
    workspace.door.tokens.add("rotating-1")
    try:
        run_id = _start("reliable-token")
        for step in range(500):
            mlflow.log_metric("loss", 1.0, step=step)
        mlflow.flush_async_logging()
        # the gateway now rejects token 1 (expired server-side before its stated expiry)
        workspace.door.tokens.discard("rotating-1")
        workspace.door.tokens.add("rotating-2")
        for step in range(500, 1000):
            mlflow.log_metric("loss", 1.0, step=step)
        mlflow.flush_async_logging()
        assert credential.issued == 2
        # synchronous calls refresh too
        workspace.door.tokens.discard("rotating-2")
        workspace.door.tokens.add("rotating-3")
        assert MlflowClient().get_run(run_id).info.run_id == run_id
        assert credential.issued == 3
        mlflow.end_run()
        assert_exactly(workspace.server, run_id, "loss", 1000)
    finally:
        workspace.door.tokens.difference_update({"rotating-1", "rotating-2", "rotating-3"})


def test_validation_error_reaches_the_user_with_the_servers_message(workspace, fast_retries):
    run_id = _start("reliable-4xx")
    mlflow.log_param("lr", "0.1")
    mlflow.flush_async_logging()
    for step in range(300):
        mlflow.log_metric("loss", 1.0, step=step)
    mlflow.log_param("lr", "0.2")  # changing a param's value: the server refuses it
    for step in range(300, 600):
        mlflow.log_metric("loss", 1.0, step=step)
    with pytest.raises(MlflowException) as info:
        mlflow.end_run()
    message = str(info.value)
    assert "Changing param values is not allowed" in message and "'lr'" in message
    assert workspace.token not in message
    assert_exactly(workspace.server, run_id, "loss", 600)  # the rest of the batch was delivered
    assert run_data(workspace.server, run_id)["info"]["status"] == "FINISHED"
    assert journal_files(workspace.client_dir.parent / "workspace-home") == []  # dropped, not retried


def test_mlflow_async_logging_semantics(workspace, monkeypatch, fast_retries):
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    run_id = _start("reliable-async")
    workspace.door.faults.delay(0.3, path=LOG_BATCH, times=1)
    operations = mlflow.log_metric("loss", 0.25, step=0)
    assert operations is not None
    operations.wait()  # returns once the server acknowledged the point
    assert [p["value"] for p in history(workspace.server, run_id, "loss")] == [0.25]
    mlflow.log_metrics({"a": 1.0, "b": 2.0}, step=1)
    mlflow.flush_async_logging()
    assert {m["key"] for m in run_data(workspace.server, run_id)["data"]["metrics"]} == {"loss", "a", "b"}
    mlflow.log_param("p", "1")
    mlflow.flush_async_logging()
    bad = mlflow.log_param("p", "2", synchronous=False)
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        bad.wait()
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        mlflow.end_run()


def test_reads_after_logging_see_everything(workspace, fast_retries):
    run_id = _start("reliable-reads")
    workspace.door.faults.delay(0.5, path=LOG_BATCH, times=1)
    for step in range(200):
        mlflow.log_metric("loss", 1.0, step=step)
    client = MlflowClient()
    assert len(client.get_metric_history(run_id, "loss")) == 200
    mlflow.set_tag("t", "v")
    assert client.get_run(run_id).data.tags["t"] == "v"
    mlflow.log_param("k", "v")
    found = mlflow.search_runs(filter_string="params.k = 'v'", output_format="list")
    assert [r.info.run_id for r in found] == [run_id]


def test_async_logging_can_be_switched_off(workspace, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE_ASYNC_LOGGING", "false")
    run_id = _start("reliable-off")
    mlflow.log_metric("loss", 0.5, step=0)
    assert [p["value"] for p in history(workspace.server, run_id, "loss")] == [0.5]  # sent at once
    assert journal_files(workspace.client_dir.parent / "workspace-home") == []
    mlflow.end_run()


def test_end_run_during_an_outage_is_bounded_and_the_status_follows_later(workspace, monkeypatch, fast_retries):
    monkeypatch.setenv("MLFLOW_WORKSPACE_FLUSH_TIMEOUT", "3")
    run_id = _start("reliable-outage-end")
    for step in range(300):
        mlflow.log_metric("loss", 1.0, step=step)
    workspace.server.stop()  # connection refused behind the door: 502 for everything
    try:
        started = time.perf_counter()
        mlflow.end_run()  # no raise, no minutes of MLflow retries: bounded by the flush limit
        took = time.perf_counter() - started
        assert took < 10, f"end_run took {took:.1f}s with the workspace down"
        assert journal_files(workspace.client_dir.parent / "workspace-home")
    finally:
        workspace.server.start()
    mlflow.flush_async_logging()  # explicit: waits until the workspace took everything
    assert_exactly(workspace.server, run_id, "loss", 300)
    assert run_data(workspace.server, run_id)["info"]["status"] == "FINISHED"
