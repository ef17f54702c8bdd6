"""Hostile values in placeholders: every quoting context receives exactly the value, nothing runs.

Each rendered command runs in real bash (as jobs do) and prints its argv as JSON; the tests assert
the exact text received and that no ``pwned`` file appeared.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import subprocess
import sys
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
