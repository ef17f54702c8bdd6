"""MLproject ``{param}`` values reach the entry point exactly, whatever quotes surround them (MLflow's
own ``shlex.quote`` is only right outside quotes: ``'{x}'`` with ``$(...)`` ran the command)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.shell_quoting import UnsafeSlot, format_command

ARGV = shlex.quote(sys.executable) + " -c 'import sys,json;print(json.dumps(sys.argv[1:]))'"
VALUES = ["$(touch pwned)", "'; touch pwned; '", '"; touch pwned; "', "`touch pwned`", "a\\", "{x}", "", "$HOME"]


def test_format_command_escapes_each_field_for_its_quoting(tmp_path):
    template = ARGV + " {x} '{x}' \"{x}\" pre{x} '{{literal}}' {x!s:>3}"
    for value in VALUES:
        command = format_command(template, {"x": value})
        out = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == [value, value, value, f"pre{value}", "{literal}", f"{value:>3}"]
    assert not any(tmp_path.iterdir())
    with pytest.raises(UnsafeSlot, match=r"\{x\} stands inside `...`"):
        format_command("echo `echo {x}`", {"x": "v"})


@pytest.mark.slow
def test_mlflow_run_with_quoted_parameters_runs_nothing_else(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    command = (ARGV + " '{x}' \"{x}\" {x}").replace('"', '\\"')
    (project / "MLproject").write_text(
        f'name: q\nentry_points:\n  main:\n    parameters: {{x: {{type: string, default: a}}}}\n'
        f'    command: "{command}"\n', encoding="utf-8")
    value = f"$(touch {tmp_path}/pwned) '; touch {tmp_path}/pwned; ' `touch {tmp_path}/pwned`"
    env = {key: val for key, val in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-m", "mlflow", "run", str(project), "--backend", "azureml",
                             "--env-manager", "local", "-P", f"x={value}", "--experiment-name", "quoting"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.dumps([value] * 3) in result.stdout
    assert not (tmp_path / "pwned").exists() and not (project / "pwned").exists()
    client = MlflowClient(Workspace.local(os.environ["MLFLOW_WORKSPACE_HOME"]).get_mlflow_tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("quoting").experiment_id])
    assert run.info.status == "FINISHED"
