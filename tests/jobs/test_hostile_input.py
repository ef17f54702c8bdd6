"""Hostile values in placeholders: every quoting context receives exactly the value, nothing runs.

Each rendered command runs in real bash (as jobs do) and prints its argv as JSON; the tests assert
the exact text received and that no ``pwned`` file appeared.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlflow_workspace_plugin.jobs import JobSpecError, render_command
from mlflow_workspace_plugin.jobs.placeholders import check_quoting, normalize_command

ARGV = shlex.quote(sys.executable) + " -c 'import sys,json;print(json.dumps(sys.argv[1:]))'"

HOSTILE = [
    "'", '"', "$(touch pwned)", "`touch pwned`", "\\", "\\'", "a\nb", "two  words", "!", "$HOME",
    "'; touch pwned; '", '"; touch pwned; "', "'\"'\"$(touch pwned)", "x\\", "\\\"; touch pwned; #",
    "\n$(touch pwned)\ntouch pwned\n", "a=b", "PATH=/nowhere", "~", "*", "-n", "", "#", "}}", "$'\\x27'",
    "${HOME}", "$((1+1))", "\\\\$(touch pwned)", "it's \"quoted\" $HOME `id` \\n", "\t", "é ü 中",
]

# (template, expected argv for a value v)
CONTEXTS = {
    "bare": ("ARGV ${{inputs.x}}", lambda v: [v]),
    "single": ("ARGV '${{inputs.x}}'", lambda v: [v]),
    "double": ('ARGV "${{inputs.x}}"', lambda v: [v]),
    "ansi-c": ("ARGV $'${{inputs.x}}'", lambda v: [v]),
    "inside words": ("ARGV pre${{inputs.x}}post \"a ${{inputs.x}} b\" 'c ${{inputs.x}} d' --x=${{inputs.x}}",
                     lambda v: [f"pre{v}post", f"a {v} b", f"c {v} d", f"--x={v}"]),
    "escaped quotes around": ('ARGV \\"\'${{inputs.x}}\'\\" "\\"${{inputs.x}}\\""', lambda v: [f'"{v}"', f'"{v}"']),
    "after a command substitution": ('X="$(echo "it\'s")"; ARGV "$X" \'${{inputs.x}}\'', lambda v: ["it's", v]),
    "inside $(...)": ('ARGV "$(printf %s "${{inputs.x}}")" "$(printf %s \'${{inputs.x}}\')"',
                      lambda v: [v.rstrip("\n")] * 2),
    "after a here-document": ("cat >/dev/null <<'EOF'\nit's \"open\n  EOF\nEOF\nARGV '${{inputs.x}}'", lambda v: [v]),
    "comment": ("ARGV '${{inputs.x}}' # ${{inputs.x}} '${{inputs.x}}'", lambda v: [v]),
    "multi-line": ("true \\\n && ARGV '${{inputs.x}}' \\\n  ${{inputs.x}}", lambda v: [v, v]),
}


def run(command: str, cwd: Path) -> list[str]:
    result = subprocess.run(["bash", "-c", command.replace("ARGV", ARGV)], cwd=cwd, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, (command, result.stderr)
    return json.loads(result.stdout)


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_every_context_receives_exactly_the_value(context, tmp_path):
    template, expected = CONTEXTS[context]
    for value in HOSTILE:
        rendered = render_command(template, {"inputs.x": value})
        assert run(rendered, tmp_path) == expected(value), (context, value, rendered)
    assert not any(tmp_path.iterdir()), "a hostile value ran a command"


def test_preview_spelling_in_quotes_is_escaped_too(tmp_path):
    command = normalize_command("ARGV '{inputs.x}' \"{inputs.x}\" {inputs.x}")
    for value in HOSTILE:
        assert run(render_command(command, {"inputs.x": value}), tmp_path) == [value] * 3
    assert not any(tmp_path.iterdir())


def test_optional_blocks_are_read_as_the_shell_reads_them(tmp_path):
    command = "ARGV $[[ '--opt=${{inputs.o}}' ]] '${{inputs.x}}'"
    value = "'; touch pwned; '"
    assert run(render_command(command, {"inputs.x": value}), tmp_path) == [value]
    assert run(render_command(command, {"inputs.x": value, "inputs.o": value}), tmp_path) == [f"--opt={value}", value]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("command", "where"), [
    ("echo `echo ${{inputs.x}}`", "inside `...`"),
    ("echo ${X:-${{inputs.x}}}", "inside ${...}"),
    ("echo $(( ${{inputs.x}} + 1 ))", "inside $((...))"),
    ("cat <<EOF\n${{inputs.x}}\nEOF", "inside a here-document"),
    ("cat <<'EOF'\nvalue: '${{inputs.x}}'\nEOF", "inside a here-document"),
    ("echo \\${{inputs.x}}", "follows a backslash"),
    ("echo \"\\${{inputs.x}}\"", "follows a backslash"),
    ("echo $${{inputs.x}}", "follows a '$'"),
    ("echo \"$${{inputs.x}}\"", "follows a '$'"),
])
def test_a_placeholder_where_no_escaping_is_certain_is_refused(command, where):
    with pytest.raises(JobSpecError, match=r"command: \$\{\{inputs\.x\}\} (stands )?" + re.escape(where)):
        render_command(command, {"inputs.x": "v"})
    with pytest.raises(JobSpecError):
        check_quoting(command, source_file="job.yml")


def test_a_nul_character_is_refused():
    with pytest.raises(JobSpecError, match=r"command: the value of \$\{\{inputs\.x\}\} holds a NUL character"):
        render_command("echo ${{inputs.x}}", {"inputs.x": "a\0b"})
    with pytest.raises(JobSpecError, match=r"command: the command holds a NUL character"):
        render_command("echo a\0b", {})


def test_random_hostile_values_in_one_command(tmp_path):
    """200 random strings over the shell's special characters, in every context of one command."""
    rng = random.Random(18)
    alphabet = "'\"\\$`(){}[]!#&|;<>*?~= \t\nab-é"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(50)]
    shapes = ["${{inputs.v%d}}", "'${{inputs.v%d}}'", '"${{inputs.v%d}}"', "$'${{inputs.v%d}}'"]
    command = "ARGV " + " ".join(shape % i for shape in shapes for i in range(len(values)))
    rendered = render_command(command, {f"inputs.v{i}": value for i, value in enumerate(values)})
    assert run(rendered, tmp_path) == values * len(shapes)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- through the CLI, on real local runs
CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]
PRINT_LINES = "printf '[%s]\\n'"


def cli(args: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    return subprocess.run([*CLI, *args], cwd=cwd, env={**env, **extra_env}, capture_output=True, text=True,
                          timeout=300)


def run_count() -> int:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from mlflow_workspace_plugin import local_workspace

    home = Path(os.environ["MLFLOW_WORKSPACE_HOME"])
    if not any(home.iterdir()):
        return 0
    client = MlflowClient(local_workspace.local_tracking_uri(home))
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return len(client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=5000))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.mark.slow
def test_cli_set_value_in_every_quoting_reaches_the_command_exactly(tmp_path):
    pwned = tmp_path / "pwned"
    weird_tmp = tmp_path / "tmp dir 'q' \"d\" $(touch pwned) `touch pwned`"  # the private copy's path
    weird_tmp.mkdir()
    data = tmp_path / "data 'x' \"y\" $(touch pwned)"
    data.mkdir()
    job = write(tmp_path / "job.yml", f"""
        command: >-
          {PRINT_LINES} ${{{{inputs.x}}}} '${{{{inputs.x}}}}' "${{{{inputs.x}}}}" '{{inputs.x}}'
          "${{{{inputs.d}}}}" '${{{{outputs.o}}}}' && test -d "${{{{outputs.o}}}}" && test -d ${{{{inputs.d}}}}
        inputs:
          x: default
          d: {{type: uri_folder, path: {json.dumps(data.name)}}}
        outputs: {{o: {{}}}}
        experiment_name: hostile
    """)
    value = f"'; touch {pwned}; ' \"; touch {pwned}; \" $(touch {pwned}) `touch {pwned}` \\ ! $HOME"
    result = cli(["job", "create", "-f", str(job), "--set", f"inputs.x={value}", "--stream"], tmp_path,
                 TMPDIR=str(weird_tmp))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lines[:4] == [f"[{value}]"] * 4
    assert lines[4] == f"[{data}]" and lines[5].startswith(f"[{weird_tmp}/") and lines[5].endswith("/outputs/o]")
    assert not pwned.exists() and not (tmp_path / "pwned").exists() and not (weird_tmp / "pwned").exists()


@pytest.mark.slow
def test_cli_sweep_choice_values_reach_the_trials_exactly(tmp_path):
    pwned = tmp_path / "pwned"
    values = [f"'; touch {pwned}; '", f'"; touch {pwned}; "', f"$(touch {pwned})"]
    sweep = write(tmp_path / "sweep.yml", f"""
        type: sweep
        sampling_algorithm: grid
        trial:
          command: {PRINT_LINES} '${{{{search_space.v}}}}' "${{{{search_space.v}}}}" ${{{{search_space.v}}}}
        search_space:
          v: {{type: choice, values: {json.dumps(values)}}}
        objective: {{primary_metric: m, goal: minimize}}
        limits: {{max_total_trials: 3, max_concurrent_trials: 3}}
        experiment_name: hostile-sweep
    """)
    result = cli(["job", "create", "-f", str(sweep), "--stream"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not pwned.exists()
    from mlflow import MlflowClient

    from mlflow_workspace_plugin import local_workspace

    client = MlflowClient(local_workspace.local_tracking_uri(Path(os.environ["MLFLOW_WORKSPACE_HOME"])))
    experiment = client.get_experiment_by_name("hostile-sweep")
    trials = [run for run in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in run.data.tags]
    assert len(trials) == 3
    for trial in trials:
        log = Path(client.download_artifacts(trial.info.run_id, "user_logs/std_log.txt", str(tmp_path))).read_text()
        v = trial.data.params["v"]
        assert [line for line in log.splitlines() if line.startswith("[")] == [f"[{v}]"] * 3
    assert sorted(trial.data.params["v"] for trial in trials) == sorted(values)


BAD_FILES = {
    "env name with =": ("command: echo hi\nenvironment_variables: {'A=B': x}\n", "environment_variables.A=B"),
    "env name with a space": ("command: echo hi\nenvironment_variables: {'A B': x}\n", "environment_variables.A B"),
    "NUL in an env value": ('command: echo hi\nenvironment_variables: {A: "x\\0y"}\n', "environment_variables.A"),
    "NUL in the command": ('command: "echo a\\0b"\n', "command"),
    "huge timeout": ("command: echo hi\nlimits: {timeout: 100000000000000000000}\n", "limits.timeout"),
    "deep nesting": ("command: echo hi\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", "nests deeper than 64"),
    "alias bomb": ("command: echo hi\na0: &a0 [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)), "aliases"),
    "huge file": ("command: echo hi\n" + "# padding\n" * 500_000, "a job file is at most 4 MiB"),
    "placeholder in backticks": ("command: echo `echo ${{inputs.x}}`\ninputs: {x: 1}\n", "command"),
}


@pytest.mark.slow
def test_cli_bad_files_are_one_error_line_and_create_no_run(tmp_path):
    before = run_count()
    for case, (text, named) in BAD_FILES.items():
        job = tmp_path / f"{case.replace(' ', '-')}.yml"
        job.write_text(text, encoding="utf-8")
        result = cli(["job", "create", "-f", str(job)], tmp_path)
        assert result.returncode != 0, case
        assert "Traceback" not in result.stderr, (case, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and named in errors[0] and len(result.stderr.strip().splitlines()) == 1, \
            (case, result.stderr[-2000:])
    assert run_count() == before


@pytest.mark.slow
def test_hostile_values_on_a_ray_target_reach_the_command_exactly(ray_workspace, tmp_path):
    from helpers import read_artifact
    from mlflow import MlflowClient

    from mlflow_workspace_plugin.jobs import load_job, submit_job

    pwned = tmp_path / "pwned"
    job = write(tmp_path / "job.yml", f"""
        command: {PRINT_LINES} ${{{{inputs.x}}}} '${{{{inputs.x}}}}' "${{{{inputs.x}}}}" && echo x > ${{{{outputs.o}}}}/f
        inputs: {{x: default}}
        outputs: {{o: {{}}}}
        compute: azureml:fast-cluster
        experiment_name: hostile-ray
    """)
    value = f"'; touch {pwned}; ' \"$(touch {pwned})\" `touch {pwned}` \\ $HOME\nnext line"
    handle = submit_job(load_job(job, overrides=[f"inputs.x={value}"]))
    assert handle.wait(), handle.failure_message()
    log = read_artifact(MlflowClient(ray_workspace), handle.run_id, "user_logs/std_log.txt")
    printed = "\n".join(line for line in log.splitlines() if not line.startswith("==="))
    assert printed.count(f"[{value}]") == 3, log
    assert not pwned.exists()
