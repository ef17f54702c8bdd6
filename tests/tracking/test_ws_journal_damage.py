"""A damaged journal row never stops ``mlflow-workspace sync``: the row is moved aside with one
message naming it, and everything else (the rest of that journal, the other journals) is sent.
Real ``mlflow server`` behind the front door, journals left by SIGKILLed processes, the real CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from ws_checks import assert_exactly, client_env, history, journal_files, mlflow_workspace_cli, start_script

from mlflow_workspace_plugin.reliable.entries import BadEntry, decode

LOG_BATCH = "/runs/log-batch"
LOG_POINTS = """
import os, time, mlflow
client = mlflow.MlflowClient()
run_id, points = os.environ["RUN_ID"], int(os.environ["POINTS"])
for step in range(points):
    client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
client.set_tag(run_id, "note", "kept")
print("LOGGED", flush=True)
time.sleep(600)
"""


def _home(workspace) -> Path:
    return workspace.client_dir.parent / "workspace-home"


def _new_run(workspace, name: str) -> str:
    client = MlflowClient(workspace.uri)
    experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
    return client.create_run(experiment.experiment_id).info.run_id


def _orphan(workspace, run_id: str, points: int) -> Path:
    """The journal of a process SIGKILLed while the workspace refused its data."""
    before = set(journal_files(_home(workspace)))
    rule = workspace.door.faults.unavailable(path=LOG_BATCH)
    env = client_env(workspace.uri, workspace.token, _home(workspace), RUN_ID=run_id, POINTS=str(points))
    child = start_script(LOG_POINTS, env, workspace.client_dir)
    try:
        deadline = time.monotonic() + 120
        while "LOGGED" not in child.stdout.readline():
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()[-2000:]
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    workspace.door.faults.rules.remove(rule)
    (made,) = set(journal_files(_home(workspace))) - before
    return made


def _damage(journal: Path, payloads: dict[int, str]) -> list[int]:
    """Overwrite the payloads of the rows holding the given steps; returns their seqs."""
    with sqlite3.connect(journal) as conn:
        rows = conn.execute("SELECT seq, payload FROM entries WHERE kind = 'metric'").fetchall()
        seqs = {json.loads(p)["step"]: s for s, p in rows}
        for step, payload in payloads.items():
            conn.execute("UPDATE entries SET payload = ? WHERE seq = ?", (payload, seqs[step]))
    return [seqs[step] for step in payloads]


@pytest.mark.slow
def test_a_corrupt_row_is_quarantined_and_everything_else_is_sent(workspace):
    first, second = _new_run(workspace, "damaged-row"), _new_run(workspace, "damaged-row")
    damaged = _orphan(workspace, first, 300)
    healthy = _orphan(workspace, second, 300)
    assert healthy != damaged
    bad_seq, wrong_seq = _damage(damaged, {
        17: '{"value": 0.5, "timestamp": 1, "st',  # torn: not JSON
        18: '{"value": "$(touch pwned)", "timestamp": 1, "step": 18}'})  # not a number
    env = client_env(workspace.uri, workspace.token, _home(workspace))
    done = mlflow_workspace_cli("sync", env=env, cwd=workspace.client_dir)
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "JSONDecodeError" not in output, output
    assert done.returncode == 0, output
    moved = [line for line in done.stderr.splitlines() if "moved" in line and damaged.name in line]
    assert len(moved) == 1, done.stderr  # one message for the journal's bad rows
    quarantine = damaged.parent / "quarantine"
    assert str(quarantine) in moved[0] and "2 rows" in moved[0] and f"row {bad_seq}" in moved[0]
    assert not (workspace.client_dir / "pwned").exists()
    # everything else arrived, exactly once: both runs, the tags, the other 298 points
    assert_exactly(workspace.server, second, "loss", 300)
    steps = sorted(int(p.get("step", 0)) for p in history(workspace.server, first, "loss"))
    assert steps == [s for s in range(300) if s not in (17, 18)]
    client = MlflowClient(workspace.uri)
    assert client.get_run(first).data.tags["note"] == "kept" == client.get_run(second).data.tags["note"]
    # the bad rows are kept, verbatim, for whoever wants to look; the journals are gone
    (kept,) = quarantine.glob(f"{damaged.stem}*.rows.jsonl")
    rows = [json.loads(line) for line in kept.read_text().splitlines()]
    assert [r["seq"] for r in rows] == [bad_seq, wrong_seq]
    assert rows[0]["payload"] == '{"value": 0.5, "timestamp": 1, "st'
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert journal_files(_home(workspace)) == []
    again = mlflow_workspace_cli("sync", env=env, cwd=workspace.client_dir)
    assert again.returncode == 0 and "nothing to sync" in again.stdout, again.stdout + again.stderr


@pytest.mark.parametrize(("kind", "payload", "why"), [
    ("metric", "", "not JSON"),
    ("metric", "[" * 100_000, "not JSON"),  # deep nesting: RecursionError, not a crash
    ("metric", '"just text"', "not a JSON object"),
    ("metric", '{"value": true, "timestamp": 1, "step": 0}', "not a number"),
    ("metric", '{"value": 1.0, "timestamp": "1", "step": 0}', "not an integer"),
    ("param", '{"value": 3}', "not text"),
    ("tag", "{}", "not text"),
    ("run_update", '{"status": "FINISHED"}', "malformed"),
    ("'; DROP TABLE entries; --", '{"value": "x"}', "unknown"),
])
def test_decode_names_what_is_wrong_with_a_damaged_row(kind, payload, why):
    with pytest.raises(BadEntry, match=why):
        decode(1, "run", kind, "key", payload)


def test_decode_keeps_good_rows_as_they_were_logged():
    entry = decode(7, "run", "metric", "loss", '{"value": NaN, "timestamp": 5, "step": 2}')
    assert (entry.seq, entry.key, entry.payload["timestamp"], entry.payload["step"]) == (7, "loss", 5, 2)
    assert decode(8, "run", "run_update", "", '{"status": 3, "end_time": null, "run_name": null}').seq == 8
