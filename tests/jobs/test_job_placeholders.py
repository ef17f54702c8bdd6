"""Placeholders: both spellings found and normalised, values shell-quoted, optional blocks."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from mlflow_workspace_plugin.jobs import JobSpecError, find_placeholders, render_command
from mlflow_workspace_plugin.jobs.placeholders import normalize_command


def test_find_both_spellings_in_order():
    command = "python a.py {inputs.iris} --lr ${{ search_space.lr }} --out ${{outputs.model}} {search_space.b}"
    found = find_placeholders(command)
    assert [(p.kind, p.name, p.preview) for p in found] == [
        ("inputs", "iris", True),
        ("search_space", "lr", False),
        ("outputs", "model", False),
        ("search_space", "b", True),
    ]
    assert [command[p.start : p.end] for p in found] == [p.text for p in found]
    assert found[1].key == "search_space.lr" and found[1].canonical == "${{search_space.lr}}"


def test_other_braces_are_not_placeholders():
    command = "bash -c 'echo {a,b} ${HOME} {{inputs.x}} {input.x} {inputs}' && awk '{print $1}'"
    assert find_placeholders(command) == []


def test_normalize_command_rewrites_the_preview_spelling():
    command = "  python main.py\n --iris {inputs.iris} --out ${{outputs.m}} $[[--x {inputs.x}]]\n"
    assert normalize_command(command) == (
        "python main.py\n --iris ${{inputs.iris}} --out ${{outputs.m}} $[[--x ${{inputs.x}}]]"
    )


def test_render_quotes_values_and_keeps_numbers_readable():
    command = "python main.py --csv ${{inputs.iris}} --lr {search_space.lr} --name ${{inputs.name}} --n ${{inputs.n}}"
    values = {
        "inputs.iris": "/data/my iris.csv",
        "search_space.lr": "0.01",
        "inputs.name": "it's $HOME; rm -rf /",
        "inputs.n": "3",
    }
    rendered = render_command(command, values)
    assert rendered.startswith("python main.py --csv '/data/my iris.csv' --lr 0.01 --name ")
    assert rendered.endswith(" --n 3")
    assert shlex.split(rendered) == [
        "python", "main.py", "--csv", "/data/my iris.csv", "--lr", "0.01", "--name", "it's $HOME; rm -rf /", "--n", "3",
    ]


def test_rendered_command_runs_with_the_exact_values(tmp_path):
    command = "{python} -c 'import sys; print(sys.argv[1:])' ${{inputs.a}} ${{inputs.b}}".replace(
        "{python}", shlex.quote(sys.executable)
    )
    rendered = render_command(command, {"inputs.a": "two words", "inputs.b": "$(echo injected)"})
    output = subprocess.run(rendered, shell=True, capture_output=True, text=True, check=True).stdout
    assert output.strip() == "['two words', '$(echo injected)']"


def test_optional_blocks_kept_or_dropped():
    command = "python a.py $[[--extra ${{inputs.extra}}]] $[[--w {inputs.w} --v ${{inputs.v}}]] --out ${{outputs.o}}"
    assert render_command(command, {"outputs.o": "/o"}) == "python a.py   --out /o"
    assert render_command(command, {"outputs.o": "/o", "inputs.extra": "e", "inputs.w": None, "inputs.v": "1"}) == (
        "python a.py --extra e  --out /o"
    )
    assert render_command(command, {"outputs.o": "/o", "inputs.extra": "e", "inputs.w": "2", "inputs.v": "1"}) == (
        "python a.py --extra e --w 2 --v 1 --out /o"
    )


def test_render_without_a_required_value_fails():
    with pytest.raises(JobSpecError, match=r"command: no value for \$\{\{inputs.iris\}\}; known: inputs.other"):
        render_command("python a.py ${{inputs.iris}}", {"inputs.other": "x"})


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("a ${{inputs.x.path}}", "unsupported expression '${{inputs.x.path}}'"),
        ("a ${{name}}", "unsupported expression '${{name}}'"),
        ("a ${{outputs}}", "unsupported expression '${{outputs}}'"),
        ("a {inputs.1x}", "malformed placeholder '{inputs.1x}'"),
        ("a $[[ b $[[ c ]] ]]", "optional blocks $[[ ... ]] cannot be nested"),
        ("a $[[ b", "an optional block '$[[' is not closed with ']]'"),
    ],
)
def test_malformed(command, message):
    with pytest.raises(JobSpecError) as error:
        find_placeholders(command, source_file="job.yml", field="trial.command")
    assert error.value.message == f"job.yml: trial.command: {message}" + (
        "; allowed: ${{inputs.<name>}}, ${{outputs.<name>}}, ${{search_space.<name>}} (or {inputs.<name>} ...)"
        if "unsupported" in message
        else ("; names are letters, digits and _" if "malformed" in message else "")
    )


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
