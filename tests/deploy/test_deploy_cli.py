"""The CLI paths: ``mlflow deployments ... -t <workspace URI>`` (create in a separate process that
exits: the endpoint outlives it), ``mlflow-workspace endpoint list/show/stop``, and ``run-local``."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from click.testing import CliRunner
from helpers import as_from_a_terminal

from mlflow_workspace_plugin.cli.endpoint_commands import endpoint as endpoint_cli
from mlflow_workspace_plugin.deploy import processes

pytestmark = pytest.mark.slow
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def mlflow_cli(*args: str):
    from mlflow.deployments.cli import commands

    result = CliRunner().invoke(commands, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_create_list_get_predict_delete_no_code_model(deploy_ws, tmp_path):
    uri = deploy_ws.uri
    created = subprocess.run([MLFLOW, "deployments", "create", "-t", uri, "--name", "sklearn-iris",
                              "-m", "models:/sklearn-iris/1"], capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stderr[-3000:]
    assert "sklearn-iris" in created.stdout
    # the creating process has exited; the endpoint is served by processes of its own
    assert "sklearn-iris" in mlflow_cli("list", "-t", uri)
    described = mlflow_cli("get", "-t", uri, "--name", "sklearn-iris")
    assert "Healthy" in described and "framework" in described

    rows = deploy_ws.iris_rows
    input_path = tmp_path / "rows.json"
    input_path.write_text(rows.to_json(orient="records"), encoding="utf-8")
    output_path = tmp_path / "predictions.json"
    mlflow_cli("predict", "-t", uri, "--name", "sklearn-iris", "--input-path", str(input_path),
               "--output-path", str(output_path))
    expected = joblib.load(deploy_ws.iris_file).predict(rows.to_numpy())
    assert json.loads(output_path.read_text())["predictions"] == expected.tolist()

    endpoint = printed_fields(mlflow_cli("get-endpoint", "-t", uri, "--endpoint", "sklearn-iris"))
    listed_endpoints = mlflow_cli("list-endpoints", "-t", uri)  # keys only where asked for one endpoint
    assert "sklearn-iris" in listed_endpoints and "keys" not in listed_endpoints
    assert endpoint["keys"]["primary_key"] not in listed_endpoints
    assert endpoint["keys"]["secondary_key"] not in listed_endpoints
    curl = subprocess.run(["curl", "-s", "-X", "POST", endpoint["scoring_uri"], "-H", "Content-Type: application/json",
                           "-H", f"Authorization: Bearer {endpoint['keys']['primary_key']}",
                           "-d", json.dumps({"dataframe_split": rows.to_dict(orient="split")})],
                          capture_output=True, text=True, timeout=60)
    assert json.loads(curl.stdout)["predictions"] == expected.tolist()

    # mlflow-workspace endpoint list / show (keys hidden unless asked) / stop
    runner = CliRunner()
    listed = runner.invoke(endpoint_cli, ["list", "--target", uri], catch_exceptions=False)
    assert "sklearn-iris" in listed.output and "sklearn-iris:100%:Healthy" in listed.output
    shown = runner.invoke(endpoint_cli, ["show", "sklearn-iris", "--target", uri], catch_exceptions=False)
    info = json.loads(shown.output)
    assert endpoint["keys"]["primary_key"] not in shown.output and "keys" not in info
    server_pid = info["deployments"][0]["pid"]
    assert info["deployments"][0]["log"].endswith("sklearn-iris.log")
    stopped = runner.invoke(endpoint_cli, ["stop", "sklearn-iris", "--target", uri], catch_exceptions=False)
    assert stopped.exit_code == 0, stopped.output
    assert processes.start_time(server_pid) is None and processes.start_time(info["pid"]) is None
    assert not processes.port_in_use(info["port"])
    assert "NotRunning" in runner.invoke(endpoint_cli, ["list", "--target", uri]).output

    mlflow_cli("delete", "-t", uri, "--name", "sklearn-iris")
    mlflow_cli("delete", "-t", uri, "--name", "sklearn-iris")  # idempotent
    assert "sklearn-iris" not in mlflow_cli("list-endpoints", "-t", uri)


def test_cli_error_is_one_line_not_a_traceback(deploy_ws):
    typo = subprocess.run([MLFLOW, "deployments", "create", "-t", deploy_ws.uri, "--name", "typo",
                           "-m", "models:/model-diabetse/1"], capture_output=True, text=True, timeout=300)
    assert typo.returncode == 1
    lines = [line for line in typo.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert lines == ["Error: model_uri 'models:/model-diabetse/1': no registered model named 'model-diabetse' in "
                     "the workspace"], typo.stderr
    assert "Traceback" not in typo.stderr + typo.stdout


def printed_fields(output: str) -> dict:
    """``mlflow deployments get-endpoint`` prints one ``key: value`` line per field (Python reprs)."""
    fields = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            try:
                fields[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                fields[key] = value
    return fields


def test_help_names_the_config_keys():
    out = mlflow_cli("help", "-t", "azureml-local")
    assert "deploy-config-file" in out and "traffic" in out and "env_manager" in out


def test_run_local_serves_in_the_foreground_until_ctrl_c(deploy_ws, tmp_path):
    port = processes.free_port()
    env = {**os.environ, "MLFLOW_WORKSPACE_HOME": str(deploy_ws.folder), "PYTHONFAULTHANDLER": "1"}
    env.pop("MLFLOW_WORKSPACE_CONFIG", None)
    output = open(tmp_path / "run-local.log", "w")  # a file, not an unread pipe that could fill and block it
    proc = subprocess.Popen([MLFLOW, "deployments", "run-local", "-t", "azureml-local", "--name", "try",
                             "-m", "models:/model-diabetes/1", "-C", f"port={port}"], env=env,
                            stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=as_from_a_terminal)
    try:
        body = {"dataframe_split": deploy_ws.diabetes_rows.to_dict(orient="split")}
        deadline = time.monotonic() + 120
        response = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert response is not None and response.status_code == 200, proc.poll()
        assert len(response.json()["predictions"]) == len(deploy_ws.diabetes_rows)
        assert np.isfinite(response.json()["predictions"]).all()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:  # where it hangs: every thread's stack (faulthandler, on SIGABRT)
            os.kill(proc.pid, signal.SIGABRT)
            time.sleep(2)
            pytest.fail("run-local did not exit within 60 s of Ctrl-C; its output:\n"
                        + (tmp_path / "run-local.log").read_text()[-3000:])
        assert not processes.port_in_use(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        output.close()
