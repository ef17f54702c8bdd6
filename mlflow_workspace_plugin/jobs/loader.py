"""``load_job(path)``: read a command-job YAML (2021 preview or today's CLI v2 spelling) into a :class:`CommandJob`.

Steps: read the YAML (errors carry line and column; duplicate keys are errors), apply ``--set``
overrides to the raw mapping, validate keys and types (:mod:`schema`), then normalise and check paths and
placeholders (:mod:`normalize`). Any mistake raises :class:`JobSpecError` naming the file and field.

Hostile files are bounded before PyYAML builds anything: at most :data:`MAX_YAML_BYTES`, nesting at most
:data:`MAX_YAML_DEPTH` deep, and at most :data:`MAX_YAML_NODES` values once aliases are expanded (so
neither a 100,000-deep nesting nor a "billion laughs" alias bomb gets further than the first look).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlflow_workspace_plugin.jobs.errors import JobSpecError
from mlflow_workspace_plugin.jobs.normalize import Normalizer
from mlflow_workspace_plugin.jobs.notices import ignored_fields_message, warn_once
from mlflow_workspace_plugin.jobs.overrides import apply_overrides
from mlflow_workspace_plugin.jobs.schema import CommandJobSection, check_job_type, validate_raw
from mlflow_workspace_plugin.jobs.spec import CommandJob

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000


def load_job(path: str | Path, overrides: Sequence[str] = (), name: str | None = None) -> CommandJob:
    """The command job in the YAML file ``path``, with ``--set`` ``overrides`` applied and ``name`` (``--name``)."""
    shown = str(path)
    source_file = Path(path).expanduser().resolve()
    raw = read_yaml_mapping(source_file, shown_file=shown)
    raw, applied = apply_overrides(raw, overrides, source_file=shown)
    return command_job_from_mapping(raw, source_file, shown_file=shown, name=name, overridden=applied)


def load_any_job(path: str | Path, overrides: Sequence[str] = (), name: str | None = None) -> Any:
    """The job in ``path``, whatever its type: a :class:`CommandJob`, a ``SweepSpec`` (``type: sweep``)
    or a ``PipelineSpec`` (``type: pipeline``), with ``--set`` ``overrides`` applied (``name`` names a
    command job; sweeps and pipelines take theirs when they start). The one loader of the jobs door:
    every mistake raises :class:`JobSpecError` here, before anything starts."""
    shown = str(path)
    source_file = Path(path).expanduser().resolve()
    raw = read_yaml_mapping(source_file, shown_file=shown)
    raw, applied = apply_overrides(raw, overrides, source_file=shown)
    kind = raw.get("type")
    if kind in ("sweep", "sweep_job"):
        from mlflow_workspace_plugin.jobs.sweep.spec import sweep_from_mapping

        return sweep_from_mapping(raw, source_file, shown_file=shown)
    if kind == "pipeline":
        from mlflow_workspace_plugin.jobs.pipeline.spec import pipeline_from_mapping

        return pipeline_from_mapping(raw, source_file, shown)
    return command_job_from_mapping(raw, source_file, shown_file=shown, name=name, overridden=applied)


def command_job_from_mapping(
    raw: Any,
    source_file: Path,
    *,
    shown_file: str | Path | None = None,
    field_prefix: str = "",
    name: str | None = None,
    search_space: Collection[str] | None = None,
    overridden: Sequence[tuple[str, str]] = (),
) -> CommandJob:
    """A :class:`CommandJob` from an already-read mapping (e.g. a sweep's ``trial``, with ``field_prefix="trial"``).

    ``source_file`` (absolute) anchors relative paths; ``search_space`` lists the names ``${{search_space.x}}``
    may use (None: such placeholders are errors, as in a plain command job).
    """
    shown = str(shown_file if shown_file is not None else source_file)
    check_job_type(raw, shown, field_prefix)
    section = validate_raw(
        CommandJobSection, raw, source_file=shown, field_prefix=field_prefix, overridden=overridden
    )
    normalizer = Normalizer(source_file, shown_file=shown, field_prefix=field_prefix, overridden=overridden)
    job = normalizer.job(section, name=name, search_space=search_space)
    if job.ignored_fields:  # one warning per job file and process: never one per sweep trial or step start
        warn_once(ignored_fields_message(shown, job.ignored_fields), scope="ignored fields")
    return job


def read_yaml_mapping(source_file: Path, *, shown_file: str | None = None) -> dict:
    """The top-level mapping of a YAML file; invalid YAML, duplicate keys or another shape raise JobSpecError."""
    shown = shown_file or str(source_file)
    try:
        size = source_file.stat().st_size if source_file.is_file() else 0
        if size > MAX_YAML_BYTES:
            raise JobSpecError.at(shown, None, f"is {size / 1048576:.1f} MiB; a job file is at most "
                                  f"{MAX_YAML_BYTES // 1048576} MiB")
        with source_file.open(encoding="utf-8") as file:
            text = file.read(MAX_YAML_BYTES + 1)  # (a file growing meanwhile, or a FIFO)
        if len(text) > MAX_YAML_BYTES:
            raise JobSpecError.at(shown, None, f"is larger than {MAX_YAML_BYTES // 1048576} MiB, the most a job "
                                  "file may be")
    except FileNotFoundError:
        raise JobSpecError.at(shown, None, "no such file") from None
    except IsADirectoryError:
        raise JobSpecError.at(shown, None, "is a folder; give the job's YAML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise JobSpecError.at(shown, None, f"cannot be read: {error}") from None
    try:
        check_yaml_shape(text, shown)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise JobSpecError.at(shown, None, _yaml_problem(error)) from None
    if data is None:
        raise JobSpecError.at(shown, None, "is empty; a job needs at least a command")
    if not isinstance(data, dict):
        raise JobSpecError.at(shown, None, f"expected a mapping of keys at the top level, got a {type(data).__name__}")
    return data


def check_yaml_shape(text: str, shown: str) -> None:
    """Raise :class:`JobSpecError` if ``text`` nests deeper than :data:`MAX_YAML_DEPTH` or holds more
    than :data:`MAX_YAML_NODES` values with aliases expanded (read as an event stream: no recursion)."""
    sizes: dict[str, int] = {}  # anchor -> values below it, expanded
    stack: list[list] = [[0, None]]  # per open collection: [values so far, its anchor]; [0]: the document
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([1, event.anchor])
            if len(stack) - 1 > MAX_YAML_DEPTH:
                raise JobSpecError.at(shown, None, f"nests deeper than {MAX_YAML_DEPTH} levels (at line "
                                      f"{event.start_mark.line + 1}); a job file is at most that deep")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            count, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            count, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            count, anchor = sizes.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = count
        stack[-1][0] += count  # a collection's count also reaches its parent when it ends
        if stack[-1][0] > MAX_YAML_NODES:
            raise JobSpecError.at(shown, None, f"holds more than {MAX_YAML_NODES} values once its aliases "
                                  f"(*name) are expanded (at line {event.start_mark.line + 1})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, but a key repeated in one mapping is an error instead of silently winning."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable key: let PyYAML report it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first written at line {first})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return f"invalid YAML: {problem}"
    context = getattr(error, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {detail}"
