"""One retry policy (``reliable/retry.py``, tenacity) for the sender, the calls a user waits on and
artifact transfers: the code uses no other retry mechanism, and the transfer path keeps the rules
the urllib3 ``Retry`` it replaced had (real server behind the front door)."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pytest
from ws_front_door import Request

from mlflow_workspace_plugin.reliable import retry, settings

PACKAGE = Path(__file__).resolve().parents[2] / "mlflow_workspace_plugin"


def test_one_retry_library_and_one_policy_module():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "urllib3.util" not in text and "Retry(" not in text, path
        if path.name != "retry.py":
            assert "tenacity.Retrying(" not in text, f"{path}: build retries with reliable.retry"
    for name in ("reliable/sender.py", "store/session.py", "store/transfer_http.py", "store/transfers.py"):
        assert "from mlflow_workspace_plugin.reliable.retry import" in (PACKAGE / name).read_text(), name


def test_backoff_doubles_with_jitter_within_the_cap_and_retry_after_is_capped(monkeypatch):
    monkeypatch.setenv(settings.RETRY_MAX_WAIT_ENV, "3")
    waits = [retry.SENDING.backoff(n) for n in range(1, 8)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 1.5 and waits[-1] == 3.0
    assert retry.SENDING.backoff(10_000) == 3.0  # no overflow
    assert retry.TRANSFERS.backoff(1) == 0.0 and 0.4 <= retry.TRANSFERS.backoff(2) <= 0.7
    assert all(retry.CALLS.backoff(n) <= 4.0 for n in range(1, 30))
    assert retry.CALLS.wait(3, retry_after=2.5) == 2.5
    assert retry.SENDING.wait(1, retry_after=3600) == settings.MAX_RETRY_AFTER


def _seen(workspace, fragment: str) -> list[float]:
    times: list[float] = []

    def observe(request: Request) -> None:
        if fragment in request.path:
            times.append(time.monotonic())

    workspace.door.faults.rules.insert(0, observe)
    return times


@pytest.mark.slow
def test_transfer_requests_ride_out_dropped_answers_and_honour_retry_after(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.RETRY_MAX_WAIT_ENV, "0.05")
    source = tmp_path / "src"
    source.mkdir()
    (source / "dropped.txt").write_bytes(b"after two dropped connections")
    (source / "throttled.txt").write_bytes(b"after one 429")
    dropped_seen, throttled_seen = _seen(workspace, "/dropped.txt"), _seen(workspace, "/throttled.txt")
    dropped = workspace.door.faults.drop(path="/dropped.txt", times=2)  # sent, no answer: 2 retries allowed
    throttled = workspace.door.faults.throttle(retry_after=1.0, path="/throttled.txt", times=1)
    mlflow.set_experiment("retry-policy")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), "out")
    assert dropped.fired == 2 and len(dropped_seen) == 3  # one file attempt: 1 request + 2 retries
    assert throttled.fired == 1 and len(throttled_seen) == 2
    assert throttled_seen[1] - throttled_seen[0] >= 0.9, "Retry-After: 1 was not honoured"
    stored = workspace.server.artifacts_dir / run.info.experiment_id / run.info.run_id / "artifacts" / "out"
    assert (stored / "dropped.txt").read_bytes() == b"after two dropped connections"
    assert (stored / "throttled.txt").read_bytes() == b"after one 429"
