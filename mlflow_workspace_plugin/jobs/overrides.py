"""``--set key.path=value`` overrides (az ml style), applied to the raw YAML mapping before validation.

- the path is dotted (``compute.target``, ``inputs.iris.mode``); ``name[0]`` indexes a list;
- the value is parsed as a YAML scalar (``2`` is a number, ``true`` a boolean, an empty value null;
  ``[a, b]`` / ``{k: v}`` in flow style are a list / mapping); anything else, such as ``hello: world``
  or ``python -c "print('a')"``, stays the text as written;
- missing mappings along the path are created;
- a field written in its short form is expanded first, so ``--set compute.target=local`` works on
  ``compute: azureml:cpu-cluster`` and ``--set code.local_path=src2`` on ``code: src``;
- ``--set inputs.x.path=...`` replaces a preview ``inputs.x.data`` location (and ``inputs.x.data...``
  replaces ``inputs.x.path``), so either spelling of the override works on either spelling of the file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mlflow_workspace_plugin.jobs.errors import JobSpecError

# short form -> the key its value moves to when a --set path goes below it
SHORT_FORMS = {"compute": "target", "code": "local_path"}

_SEGMENT = re.compile(r"(?P<key>[^.\[\]]+)(?P<indexes>(\[\d+\])*)")


def apply_overrides(
    raw: dict, overrides: Sequence[str], *, source_file: Path | str | None = None
) -> tuple[dict, list[tuple[str, str]]]:
    """A copy of ``raw`` with ``overrides`` applied, and the (field path, override text) pairs applied."""
    result = copy.deepcopy(raw)
    applied: list[tuple[str, str]] = []
    for override in overrides:
        path, value = parse_override(override, source_file=source_file)
        _assign(result, path, value, override, source_file)
        _drop_other_spelling(result, path)
        applied.append((".".join(str(part) for part in path), override))
    return result, applied


def parse_override(override: str, *, source_file: Path | str | None = None) -> tuple[list[str | int], Any]:
    """``"inputs.iris.mode=download"`` -> (``["inputs", "iris", "mode"]``, ``"download"``)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise JobSpecError.at(source_file, None, f"--set {override!r}: expected key.path=value, e.g. compute=local")
    path: list[str | int] = []
    for segment in key.strip().split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise JobSpecError.at(
                source_file, None, f"--set {override!r}: {segment!r} is not a valid key (write key.path[0].key=value)"
            )
        path.append(match["key"])
        path += [int(index) for index in re.findall(r"\[(\d+)\]", match["indexes"])]
    return path, _parse_value(text)


def _parse_value(text: str) -> Any:
    """A YAML scalar; a list or mapping only when written in flow style (``[a, b]``, ``{k: v}``); else the text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (list, dict)) and not text.lstrip().startswith(("[", "{")):
        return text
    return value


def _drop_other_spelling(raw: dict, path: list[str | int]) -> None:
    """``--set inputs.x.path=...`` on a preview ``inputs.x.data`` (or the reverse) replaces the location."""
    if len(path) >= 3 and path[0] == "inputs" and path[2] in ("path", "data"):
        entry = raw.get("inputs", {}).get(path[1])
        if isinstance(entry, dict):
            entry.pop("data" if path[2] == "path" else "path", None)


def _assign(raw: dict, path: list[str | int], value: Any, override: str, source_file: Path | str | None) -> None:
    node: Any = raw
    for depth, part in enumerate(path[:-1]):
        here = ".".join(str(p) for p in path[: depth + 1])
        child = _child(node, part, override, source_file)
        if child is None:
            child = [] if isinstance(path[depth + 1], int) else {}
        elif depth == 0 and part in SHORT_FORMS and isinstance(child, str):
            child = {SHORT_FORMS[part]: child}
        elif not isinstance(child, (dict, list)):
            raise JobSpecError.at(
                source_file, here, f"--set {override!r}: {here} is {child!r}, not a mapping; set {here}=<value> instead"
            )
        _store(node, part, child, override, source_file)
        node = child
    _store(node, path[-1], value, override, source_file)


def _child(node: Any, part: str | int, override: str, source_file: Path | str | None) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list):
            raise _bad(override, source_file, f"[{part}] indexes something that is not a list")
        return node[part] if part < len(node) else None
    if not isinstance(node, dict):
        raise _bad(override, source_file, f"{part!r} is below something that is not a mapping")
    return node.get(part)


def _store(node: Any, part: str | int, value: Any, override: str, source_file: Path | str | None) -> None:
    if isinstance(part, int):
        if not isinstance(node, list):
            raise _bad(override, source_file, f"[{part}] indexes something that is not a list")
        if part > len(node):
            raise _bad(override, source_file, f"list index [{part}] is out of range (the list has {len(node)} items)")
        if part == len(node):
            node.append(value)
        else:
            node[part] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise _bad(override, source_file, f"{part!r} is below something that is not a mapping")


def _bad(override: str, source_file: Path | str | None, problem: str) -> JobSpecError:
    return JobSpecError.at(source_file, None, f"--set {override!r}: {problem}")
