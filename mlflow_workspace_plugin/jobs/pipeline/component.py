"""Command components (Azure's ``commandComponent.schema.json``): a reusable, typed command.

A component file names ``name``, ``version``, ``display_name``, typed ``inputs`` (``type`` integer,
number, boolean, string, uri_file, uri_folder, mltable, ...; ``default``, ``optional``, ``enum``,
``min``/``max``), ``outputs``, ``command`` (with ``$[[...]]`` optional blocks), ``code``, ``environment``
and ``is_deterministic``. A pipeline step uses one through ``component: ./train.yml`` (or
``file:./train.yml``) or a registered one (``azureml:<name>:<version>`` / ``@latest``, stored with
``mlflow-workspace component create``). :meth:`Component.step_job` turns it, with the step's values,
into the mapping of an ordinary command job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.jobs.errors import JobSpecError
from mlflow_workspace_plugin.jobs.loader import read_yaml_mapping

LITERAL_TYPES = {"integer": int, "number": float, "boolean": bool, "string": str}
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
INPUT_KEYS = {"type", "default", "optional", "enum", "min", "max", "description", "mode", "path"}
COMPONENT_KEYS = {"$schema", "name", "version", "display_name", "description", "tags", "type", "inputs", "outputs",
                  "command", "code", "environment", "environment_variables", "is_deterministic", "resources",
                  "distribution", "instance_count", "limits"}
_JOB_FIELDS = ("command", "environment", "environment_variables", "resources", "distribution", "limits")


@dataclass(frozen=True)
class ComponentInput:
    """One typed input of a component."""

    name: str
    type: str
    default: Any = None
    optional: bool = False
    enum: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def is_data(self) -> bool:
        return self.type in DATA_TYPES


@dataclass(frozen=True)
class Component:
    """A validated command component; ``base`` anchors its relative paths (its file's folder)."""

    name: str
    version: str | None
    command: str
    base: Path
    shown: str
    inputs: dict[str, ComponentInput] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    is_deterministic: bool = True
    raw: dict = field(default_factory=dict)

    @property
    def reuse_text(self) -> str:
        """What identifies the component's behaviour for reuse (its definition, not where it lives)."""
        return json.dumps({k: v for k, v in self.raw.items() if k not in ("code", "$schema")}, sort_keys=True,
                          default=str)

    def code_path(self) -> Path | None:
        code = self.raw.get("code")
        if code is None:
            return None
        return (self.base / str(code).removeprefix("file:")).resolve()

    def check_value(self, name: str, value: Any, shown: str, where: str) -> Any:
        """A literal value for input ``name`` (given at ``where`` of file ``shown``), checked against its
        type, enum and bounds."""
        spec = self.inputs[name]
        expected = LITERAL_TYPES.get(spec.type)
        if expected is None:
            return value
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise JobSpecError.at(shown, where, f"{value!r} is not of type {spec.type} (input {name!r} of "
                                  f"component {self.name!r} in {self.shown})")
        if spec.enum is not None and value not in spec.enum:
            raise JobSpecError.at(shown, where, f"{value!r} is not allowed; allowed: {', '.join(map(str, spec.enum))}")
        low, high = spec.minimum, spec.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise JobSpecError.at(shown, where, f"{value!r} is outside the allowed range [{low}, {high}]")
        return value

    def step_job(self, values: Mapping[str, Any], outputs: Mapping[str, dict], overrides: Mapping[str, Any]) -> dict:
        """The command-job mapping of a step: this component's command with the step's input
        ``values`` (literals or data mappings; absent optional inputs are None), its ``outputs`` and
        the step's own job fields (``compute``, ``environment_variables``, ...) in ``overrides``."""
        job: dict[str, Any] = {key: self.raw[key] for key in _JOB_FIELDS if key in self.raw}
        code = self.code_path()
        if code is not None:
            job["code"] = str(code)
        job["inputs"] = dict(values)
        job["outputs"] = {name: dict(spec) for name, spec in outputs.items()}
        job.update(overrides)
        return job


def load_component_file(path: Path, shown: str | None = None) -> Component:
    """The component in ``path`` (errors name the file and field)."""
    shown = shown or str(path)
    raw = read_yaml_mapping(path, shown_file=shown)
    return component_from_mapping(raw, path.parent, shown)


def component_from_mapping(raw: dict, base: Path, shown: str) -> Component:
    """A :class:`Component` from a component mapping (a file's, a registered one's, or an inline step's)."""
    unknown = sorted(set(raw) - COMPONENT_KEYS)
    if unknown:
        raise JobSpecError.at(shown, unknown[0], f"unknown key in a command component; known: "
                              f"{', '.join(sorted(COMPONENT_KEYS - {'$schema'}))}")
    kind = raw.get("type", "command")
    if kind != "command":
        raise JobSpecError.at(shown, "type", f"{kind!r}: only command components are supported here")
    command = raw.get("command")
    if not isinstance(command, str) or not command.strip():
        raise JobSpecError.at(shown, "command", "missing: a component needs a command")
    inputs = {name: _component_input(name, spec, shown) for name, spec in (raw.get("inputs") or {}).items()}
    outputs = {}
    for name, spec in (raw.get("outputs") or {}).items():
        if spec is not None and not isinstance(spec, dict):
            raise JobSpecError.at(shown, f"outputs.{name}", "expected a mapping with type")
        outputs[name] = {k: v for k, v in (spec or {}).items() if k in ("type", "mode", "description")}
    deterministic = raw.get("is_deterministic", True)
    if not isinstance(deterministic, bool):
        raise JobSpecError.at(shown, "is_deterministic", f"{deterministic!r}: expected true or false")
    version = raw.get("version")
    return Component(name=str(raw.get("name") or Path(shown).stem), version=None if version is None else str(version),
                     command=command, base=base, shown=shown, inputs=inputs, outputs=outputs,
                     is_deterministic=deterministic, raw=dict(raw))


def _component_input(name: str, spec: Any, shown: str) -> ComponentInput:
    where = f"inputs.{name}"
    if not isinstance(spec, dict):
        raise JobSpecError.at(shown, where, "expected a mapping with type (and default, optional, enum, min, max)")
    unknown = sorted(set(spec) - INPUT_KEYS)
    if unknown:
        raise JobSpecError.at(shown, f"{where}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(INPUT_KEYS))}")
    kind = spec.get("type")
    if kind not in LITERAL_TYPES and kind not in DATA_TYPES:
        raise JobSpecError.at(shown, f"{where}.type", f"{kind!r} is not an input type; allowed: "
                              f"{', '.join([*LITERAL_TYPES, *DATA_TYPES])}")
    enum = spec.get("enum")
    if enum is not None and not isinstance(enum, list):
        raise JobSpecError.at(shown, f"{where}.enum", "expected a list of allowed values")
    return ComponentInput(name=name, type=kind, default=spec.get("default"), optional=bool(spec.get("optional")),
                          enum=tuple(enum) if enum is not None else None, minimum=spec.get("min"),
                          maximum=spec.get("max"))
