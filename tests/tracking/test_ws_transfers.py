"""Parallel, pooled artifact transfers through the workspace (real server behind the front door)."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pty
import struct
import sys
import termios
import threading
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ws_front_door import Request

from mlflow_workspace_plugin.store import transfer_http, transfer_progress, transfers
from mlflow_workspace_plugin.store.transfers import ArtifactTransferError

TREE = {
    "a.txt": b"alpha\n",
    "empty.bin": b"",
    "nested/deeper/deepest/x.json": b'{"x": 1}',
    "nested/empty-too.txt": b"",
    "ünïcødé/数据 1.txt": "grüße, 数据".encode(),
    "spaces, & and ?.txt": b"odd name",  # ('#' and '%' are refused or decoded twice by MLflow's server)
    "blob.bin": os.urandom(300 * 1024),  # > RANGED_MIN below: downloaded in ranges
}


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short backoff between retries (the policy is unchanged: same attempts, same order)."""
    monkeypatch.setenv("MLFLOW_WORKSPACE_RETRY_MAX_WAIT", "0.05")
    monkeypatch.setattr(transfers, "FILE_ROUNDS", dataclasses.replace(transfers.FILE_ROUNDS, first=0.05))


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer_http, "RANGED_MIN", 64 * 1024)
    monkeypatch.setattr(transfer_http, "RANGE_CHUNK", 16 * 1024)


def _write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for rel, data in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _stored(workspace, run, path: str) -> Path:
    return workspace.server.artifacts_dir / run.info.experiment_id / run.info.run_id / "artifacts" / path


def _artifact_requests(workspace) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def observe(request: Request) -> None:
        if "mlflow-artifacts" in request.path:
            seen.append((request.method, request.path))

    workspace.door.faults.add(observe)
    return seen


def test_parallel_transfers_deliver_the_same_tree_as_sequential_ones(workspace, tmp_path, monkeypatch,
                                                                     small_ranges):
    source = _write_tree(tmp_path / "src", TREE)
    mlflow.set_experiment("transfers-tree")
    with mlflow.start_run() as run:
        monkeypatch.setenv(transfers.WORKERS_ENV, "1")
        mlflow.log_artifacts(str(source), "sequential")
        monkeypatch.setenv(transfers.WORKERS_ENV, "8")
        mlflow.log_artifacts(str(source), "parallel")  # the public API goes the parallel way
    for path in ("sequential", "parallel"):
        assert _read_tree(_stored(workspace, run, path)) == TREE
    listed = {f.path for f in MlflowClient().list_artifacts(run.info.run_id, "parallel")}
    assert "parallel/empty.bin" in listed and "parallel/ünïcødé" in listed

    for workers in ("1", "8"):
        monkeypatch.setenv(transfers.WORKERS_ENV, workers)
        out = tmp_path / f"out-{workers}"
        out.mkdir()
        local = MlflowClient().download_artifacts(run.info.run_id, "parallel", str(out))
        assert Path(local) == out / "parallel"
        assert _read_tree(Path(local)) == TREE
        assert not [p for p in out.rglob("*.part")]
    single = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="parallel/blob.bin",
                                                 dst_path=str(tmp_path / "one"))
    assert Path(single).read_bytes() == TREE["blob.bin"]


def test_upload_tree_api_takes_a_client_and_a_file_selection(workspace, tmp_path):
    source = _write_tree(tmp_path / "src", TREE)
    client = MlflowClient()
    run = client.create_run(client.create_experiment("transfers-api"))
    done = transfers.upload_tree(client, source, "picked", files=["a.txt", source / "nested/deeper/deepest/x.json"],
                                 run_id=run.info.run_id)
    assert (done.files, done.bytes) == (2, len(TREE["a.txt"]) + len(TREE["nested/deeper/deepest/x.json"]))
    picked = ("a.txt", "nested/deeper/deepest/x.json")
    assert _read_tree(_stored(workspace, run, "picked")) == {k: TREE[k] for k in picked}
    with pytest.raises(MlflowException, match="is not inside"):
        transfers.upload_tree(client, source / "nested", "x", files=[source / "a.txt"], run_id=run.info.run_id)


def test_a_transient_failure_is_retried_file_by_file_and_the_upload_completes(workspace, tmp_path, fast_retries):
    source = _write_tree(tmp_path / "src", {"ok-1.txt": b"1", "flaky.txt": b"comes through", "ok-2.txt": b"2"})
    # 6 answers of 503: more than one attempt's request retries (3), so a second round is needed
    rule = workspace.door.faults.unavailable(path="/flaky.txt", times=6)
    mlflow.set_experiment("transfers-flaky")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), "out")
    assert rule.fired == 6
    assert _read_tree(_stored(workspace, run, "out")) == {"ok-1.txt": b"1", "flaky.txt": b"comes through",
                                                          "ok-2.txt": b"2"}


def test_a_failing_file_is_retried_then_reported_by_name(workspace, tmp_path, fast_retries):
    source = _write_tree(tmp_path / "src", {f"good-{i}.txt": b"g" for i in range(5)} | {"sub/broken.txt": b"b"})
    rule = workspace.door.faults.unavailable(path="/broken.txt")
    mlflow.set_experiment("transfers-broken")
    with mlflow.start_run() as run, pytest.raises(ArtifactTransferError) as info:
        mlflow.log_artifacts(str(source), "out")
    message = str(info.value)
    assert str(source / "sub" / "broken.txt") in message and "'out/sub/broken.txt'" in message
    assert "HTTP 503" in message and "Service Unavailable: restarting" in message
    assert f"({transfers.FILE_ATTEMPTS} attempts)" in message
    assert "5 of 6 files were uploaded" in message and "incomplete" in message
    assert workspace.token not in message
    assert rule.fired == transfers.FILE_ATTEMPTS * 4  # each attempt: 1 request + 3 retries of the policy
    assert _read_tree(_stored(workspace, run, "out")) == {f"good-{i}.txt": b"g" for i in range(5)}


def test_a_rejected_file_is_not_repeated_and_a_failed_download_leaves_no_torn_file(workspace, tmp_path,
                                                                                   fast_retries):
    source = _write_tree(tmp_path / "src", {"keep.txt": b"keep", "gone.txt": b"gone"})
    mlflow.set_experiment("transfers-download-fail")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), "out")
    missing = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such file"}'
    rule = workspace.door.faults.add(_Answer(404, missing, "/out/gone.txt", "GET"))
    dst = tmp_path / "dst"
    dst.mkdir()
    with pytest.raises(ArtifactTransferError) as info:  # (MlflowClient's runs:/ wrapper rewords errors)
        transfers.download_tree(MlflowClient(), "out", dst, run_id=run.info.run_id)
    assert "'out/gone.txt'" in str(info.value) and "HTTP 404" in str(info.value) and "no such file" in str(info.value)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert rule.fired == 1  # a 404 is final: not asked again
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == ["out/keep.txt"]


def test_a_file_changing_during_its_upload_is_sent_again_consistently(workspace, tmp_path):
    source = _write_tree(tmp_path / "src", {"changing.log": b"first version\n"})
    changed = threading.Event()

    def change_while_in_flight(request: Request) -> None:
        if request.method == "PUT" and request.path.endswith("/changing.log") and not changed.is_set():
            (source / "changing.log").write_bytes(b"first version\nsecond line\n")
            changed.set()

    workspace.door.faults.add(change_while_in_flight)
    puts = _artifact_requests(workspace)
    mlflow.set_experiment("transfers-changing")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), "logs")
    assert changed.is_set()
    assert (_stored(workspace, run, "logs") / "changing.log").read_bytes() == b"first version\nsecond line\n"
    assert [method for method, path in puts if path.endswith("changing.log")] == ["PUT", "PUT"]


@pytest.mark.parametrize("bad", ["0", "-2", "2.5", "65", "many", "nan"])
def test_pool_size_setting_is_validated_before_anything_is_sent(workspace, tmp_path, monkeypatch, bad):
    source = _write_tree(tmp_path / "src", {"a.txt": b"a"})
    client = MlflowClient()
    run = client.create_run(client.create_experiment(f"transfers-bad-workers-{bad}"))
    sent = _artifact_requests(workspace)
    monkeypatch.setenv(transfers.WORKERS_ENV, bad)
    with pytest.raises(MlflowException, match=rf"{transfers.WORKERS_ENV}='{bad}' is not allowed.*1 to 64"):
        client.log_artifacts(run.info.run_id, str(source))
    with pytest.raises(MlflowException, match=transfers.WORKERS_ENV):
        client.download_artifacts(run.info.run_id, "", str(tmp_path))
    assert sent == []


def test_pool_size_default_and_valid_values(monkeypatch):
    monkeypatch.delenv(transfers.WORKERS_ENV, raising=False)
    assert transfers.pool_size() == transfers.DEFAULT_WORKERS
    for value, expected in (("1", 1), (" 16 ", 16), ("64", 64), ("", transfers.DEFAULT_WORKERS)):
        monkeypatch.setenv(transfers.WORKERS_ENV, value)
        assert transfers.pool_size() == expected


def test_progress_shows_on_a_terminal_only_and_never_the_token(workspace, tmp_path, monkeypatch, capfd):
    source = _write_tree(tmp_path / "src", {f"f{i}.txt": b"x" * 100 for i in range(30)})
    client = MlflowClient()
    run = client.create_run(client.create_experiment("transfers-progress"))
    monkeypatch.setattr(transfer_progress, "SHOW_AFTER", 0.0)
    workspace.door.faults.delay(0.5, path="/f0.txt", times=1)  # long enough for a few redraws

    transfers.upload_tree(client, source, "quiet", run_id=run.info.run_id)  # stderr is a pipe here
    assert "files" not in capfd.readouterr().err

    master, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks), daemon=True)
    reader.start()
    terminal = os.fdopen(replica, "w", buffering=1)
    monkeypatch.setattr(sys, "stderr", terminal)
    try:
        done = transfers.upload_tree(client, source, "shown", run_id=run.info.run_id)
    finally:
        terminal.close()
    reader.join(timeout=10)
    shown = b"".join(chunks).decode(errors="replace")
    assert done.files == 30
    assert "Uploading 'shown'" in shown and "30/30 files" in shown
    assert workspace.token not in shown and "Bearer" not in shown and "127.0.0.1" not in shown


def _drain(fd: int, chunks: list[bytes]) -> None:
    """Read a pty's master side until the terminal side is closed."""
    try:
        while data := os.read(fd, 65536):
            chunks.append(data)
    except OSError:  # EIO once the terminal side is closed
        pass
    finally:
        os.close(fd)


class _Answer:
    """Fault rule: answer ``status``/``body`` to requests of ``method`` whose path ends with ``suffix``."""

    def __init__(self, status: int, body: bytes, suffix: str, method: str) -> None:
        self.status, self.body, self.suffix, self.method = status, body, suffix, method
        self.fired = 0

    def __call__(self, request: Request):
        from ws_front_door import Reply

        if request.method != self.method or not request.path.split("?")[0].endswith(self.suffix):
            return None
        self.fired += 1
        return Reply(self.status, self.body, {"Content-Type": "application/json"})
