"""Fetching a deployment's model never touches MLflow's process-wide tracking / registry URIs.

The download used to point both globals at the workspace for its whole duration (and put back
saved values at the end), so another thread of the same process logged to the wrong place while a
deployment fetched its model, and a URI it set meanwhile was lost.
"""

from __future__ import annotations

import threading

import mlflow
import pytest

from mlflow_workspace_plugin.deploy import model_source

pytestmark = pytest.mark.compat


def _watch_globals(stop: threading.Event, seen: set[tuple[str, str]]) -> None:
    while not stop.is_set():
        seen.add((mlflow.get_tracking_uri(), mlflow.get_registry_uri()))


@pytest.mark.parametrize("uri", ["models:/model-diabetes/1", "models:/model-diabetes@champion",
                                 "models:/sklearn-iris/1", "runs-linear"])
def test_materialize_leaves_the_global_uris_alone(deploy_ws, tmp_path, uri):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    mlflow.set_tracking_uri(other)
    mlflow.set_registry_uri(other)
    if uri == "runs-linear":  # a model logged by a run (MLflow 3 stores it as a logged model)
        run = mlflow.MlflowClient(deploy_ws.uri).search_runs(
            [mlflow.MlflowClient(deploy_ws.uri).get_experiment_by_name("deploy-tests").experiment_id])[0]
        uri = f"runs:/{run.info.run_id}/linear"
    source = model_source.resolve(uri, deploy_ws.uri)
    seen: set[tuple[str, str]] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_globals, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        dest = model_source.materialize(source, tmp_path / "model", deploy_ws.uri)
    finally:
        stop.set()
        watcher.join()
    assert (dest / "MLmodel").is_file()
    assert seen == {(other, other)}
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (other, other)
