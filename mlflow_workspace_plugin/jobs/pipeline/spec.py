"""Pipeline jobs (``type: pipeline``, Azure's ``pipelineJob.schema.json``): load, bind, validate.

A pipeline has ``display_name``, ``experiment_name``, ``description``, ``tags``, ``settings``
(``default_compute``, ``default_datastore``, ``continue_on_step_failure``, ``force_rerun``; other keys are
kept with one warning, as Azure keeps them), pipeline ``inputs`` / ``outputs`` and ``jobs``: named steps.
A step is an inline command job or uses a component (``component: ./train.yml``, ``file:./train.yml``,
``azureml:<name>:<version>`` / ``@latest``); a ``type: sweep`` step sweeps its ``trial`` component.

Step inputs are literals, data mappings or bindings: ``${{parent.inputs.x}}``,
``${{parent.jobs.<step>.outputs.<name>}}``; step outputs may bind to ``${{parent.outputs.y}}``. The graph
comes from the bindings alone. Everything is checked here, before any run exists: unknown steps and
outputs (the closest name suggested), cycles (named), type mismatches, required inputs left unbound.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.jobs.errors import JobSpecError, did_you_mean
from mlflow_workspace_plugin.jobs.loader import read_yaml_mapping
from mlflow_workspace_plugin.jobs.overrides import apply_overrides
from mlflow_workspace_plugin.jobs.pipeline.component import (
    DATA_TYPES,
    LITERAL_TYPES,
    Component,
    component_from_mapping,
    load_component_file,
)

PIPELINE_KEYS = {"$schema", "type", "name", "display_name", "experiment_name", "description", "tags", "settings",
                 "inputs", "outputs", "jobs", "compute"}
KNOWN_SETTINGS = {"default_compute", "default_datastore", "continue_on_step_failure", "force_rerun"}
SWEEP_STEP_KEYS = {"sampling_algorithm", "search_space", "objective", "limits", "early_termination"}
STEP_JOB_KEYS = {"compute", "environment_variables", "limits", "resources", "distribution", "instance_count"}
STEP_KEYS = {"type", "component", "trial", "inputs", "outputs", "name", "display_name", "description", "tags",
             "command", "code", "environment", "is_deterministic", *STEP_JOB_KEYS, *SWEEP_STEP_KEYS}
STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_BINDING = re.compile(r"^\s*\$\{\{\s*parent\.(?:(?P<kind>inputs|outputs)\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)|"
                      r"jobs\.(?P<step>[^.\s}]+)\.outputs\.(?P<output>[^.\s}]+))\s*\}\}\s*$")
# what an upstream output of a type can feed
_COMPATIBLE = {"uri_folder": {"uri_folder", "mltable", "custom_model", "mlflow_model"},
               "uri_file": {"uri_file"}, "mltable": {"mltable", "uri_folder"},
               "mlflow_model": {"mlflow_model", "custom_model", "uri_folder"},
               "custom_model": {"custom_model", "uri_folder"}, "triton_model": {"triton_model", "uri_folder"}}


@dataclass(frozen=True)
class Upstream:
    """A step input bound to another step's output."""

    step: str
    output: str
    mode: str | None = None


@dataclass(frozen=True)
class Step:
    """One step: its component, its input values (literal, data mapping, :class:`Upstream`, or None
    for an optional input left out), its outputs and the job fields it sets itself."""

    name: str
    kind: str  # "command" | "sweep"
    component: Component
    values: dict[str, Any]
    outputs: dict[str, dict]
    pipeline_outputs: dict[str, str]  # step output -> pipeline output it is bound to
    job_fields: dict[str, Any]
    sweep: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    deterministic: bool = True

    @property
    def upstream(self) -> set[str]:
        return {value.step for value in self.values.values() if isinstance(value, Upstream)}


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline job."""

    source_file: Path
    shown: str
    name: str | None
    display_name: str | None
    experiment_name: str
    description: str | None
    tags: dict[str, str]
    steps: dict[str, Step]
    outputs: dict[str, dict]
    continue_on_step_failure: bool = False
    force_rerun: bool = False
    default_compute: str | None = None
    warnings: tuple[str, ...] = ()

    def order(self) -> list[str]:
        """The steps in an order where every step comes after the steps it reads from."""
        return _topological(self.steps, self.shown)

    def graph(self) -> dict:
        """The graph as a JSON-able record (stored on the pipeline's run)."""
        return {"steps": {name: {"component": step.component.name, "type": step.kind,
                                 "depends_on": sorted(step.upstream),
                                 "inputs": {k: _shown_value(v) for k, v in step.values.items()},
                                 "outputs": sorted(step.outputs)}
                          for name, step in self.steps.items()},
                "order": self.order()}


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> PipelineSpec:
    """The pipeline in the YAML file ``path`` with ``--set`` overrides (``jobs.<step>.inputs.x=...`` too)."""
    shown = str(path)
    source_file = Path(path).expanduser().resolve()
    raw = read_yaml_mapping(source_file, shown_file=shown)
    raw, _ = apply_overrides(raw, overrides, source_file=shown)
    return pipeline_from_mapping(raw, source_file, shown)


def pipeline_from_mapping(raw: dict, source_file: Path, shown: str | None = None,
                          component_resolver=None) -> PipelineSpec:
    """A :class:`PipelineSpec` from a pipeline mapping. ``component_resolver(reference)`` returns the
    mapping of a registered component (default: the workspace's asset store)."""
    shown = shown or str(source_file)
    base = source_file.parent
    if raw.get("type") != "pipeline":
        raise JobSpecError.at(shown, "type", f"{raw.get('type')!r}: a pipeline job has type: pipeline")
    unknown = sorted(set(raw) - PIPELINE_KEYS)
    if unknown:
        raise JobSpecError.at(shown, unknown[0], "unknown key in a pipeline job"
                              f"{did_you_mean(unknown[0], PIPELINE_KEYS)}; known: "
                              f"{', '.join(sorted(PIPELINE_KEYS - {'$schema'}))}")
    settings = _mapping(raw.get("settings"), shown, "settings")
    warnings = []
    odd = sorted(set(settings) - KNOWN_SETTINGS)
    if odd:
        warnings.append(f"{shown}: settings: {', '.join(odd)} kept but without effect here (known: "
                        f"{', '.join(sorted(KNOWN_SETTINGS))})")
    continue_on_failure = _flag(settings, "continue_on_step_failure", shown)
    force_rerun = _flag(settings, "force_rerun", shown)
    default_compute = settings.get("default_compute", raw.get("compute"))
    declared_inputs = _mapping(raw.get("inputs"), shown, "inputs")
    parent_inputs = {name: _absolute(value, base) for name, value in declared_inputs.items()}
    declared_outputs = _mapping(raw.get("outputs"), shown, "outputs")
    parent_outputs = {name: dict(value or {}) for name, value in declared_outputs.items()}
    jobs = _mapping(raw.get("jobs"), shown, "jobs")
    if not jobs:
        raise JobSpecError.at(shown, "jobs", "a pipeline needs at least one step under jobs")
    resolver = component_resolver or _registered_component
    steps = {}
    for name, step_raw in jobs.items():
        if not isinstance(name, str) or not STEP_NAME.match(name):
            raise JobSpecError.at(shown, f"jobs.{name}", "not a valid step name: letters, digits and _ "
                                  "(no leading digit)")
        steps[name] = _step(name, _mapping(step_raw, shown, f"jobs.{name}"), base, shown, parent_inputs,
                            parent_outputs, default_compute, resolver)
    _check_bindings(steps, shown)
    spec = PipelineSpec(
        source_file=source_file, shown=shown, name=raw.get("name"), display_name=raw.get("display_name"),
        experiment_name=str(raw.get("experiment_name") or source_file.parent.name),
        description=raw.get("description"), tags={k: str(v) for k, v in (raw.get("tags") or {}).items()},
        steps=steps, outputs=parent_outputs, continue_on_step_failure=continue_on_failure, force_rerun=force_rerun,
        default_compute=None if default_compute is None else str(default_compute), warnings=tuple(warnings))
    spec.order()  # a cycle fails here
    return spec


# ------------------------------------------------------------------ steps
def _step(name: str, raw: dict, base: Path, shown: str, parent_inputs: dict, parent_outputs: dict,
          default_compute: Any, resolver) -> Step:
    where = f"jobs.{name}"
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise JobSpecError.at(shown, f"{where}.{unknown[0]}", f"unknown key in a step"
                              f"{did_you_mean(unknown[0], STEP_KEYS)}")
    kind = raw.get("type", "command")
    if kind not in ("command", "sweep"):
        raise JobSpecError.at(shown, f"{where}.type", f"{kind!r}: steps are command or sweep jobs here")
    raw_values = _mapping(raw.get("inputs"), shown, f"{where}.inputs")
    component = _component_of(raw, kind, where, base, shown, raw_values, resolver)
    values: dict[str, Any] = {}
    search_space = set((raw.get("search_space") or {}) if kind == "sweep" else ())
    for input_name, value in raw_values.items():
        if input_name not in component.inputs and input_name not in search_space:
            raise JobSpecError.at(shown, f"{where}.inputs.{input_name}",
                                  f"component {component.name!r} has no input {input_name!r}"
                                  f"{did_you_mean(input_name, component.inputs)}; its inputs: "
                                  f"{', '.join(sorted(component.inputs)) or '(none)'}")
        values[input_name] = _bound_input(value, f"{where}.inputs.{input_name}", shown, base, parent_inputs)
    for input_name, spec in component.inputs.items():
        if input_name in values or input_name in search_space:
            continue
        if spec.default is not None:
            values[input_name] = spec.default
        elif spec.optional:
            values[input_name] = None
        else:
            raise JobSpecError.at(shown, f"{where}.inputs.{input_name}",
                                  f"required input of component {component.name!r} is not bound: give a value or "
                                  "a binding such as ${{parent.inputs.<name>}}")
    for input_name, value in values.items():
        declared = component.inputs.get(input_name)
        if declared is None or isinstance(value, Upstream) or value is None:
            continue
        if declared.is_data:
            if not isinstance(value, dict):
                raise JobSpecError.at(shown, f"{where}.inputs.{input_name}",
                                      f"{value!r}: input {input_name!r} is of type {declared.type}; give a mapping "
                                      "with type and path, or a binding")
        else:
            component.check_value(input_name, value, shown, f"{where}.inputs.{input_name}")
    outputs, pipeline_outputs = _step_outputs(raw, component, where, shown, parent_outputs)
    job_fields = {key: raw[key] for key in STEP_JOB_KEYS if key in raw
                  and not (kind == "sweep" and key in SWEEP_STEP_KEYS)}  # a sweep's limits are the sweep's
    if "compute" not in job_fields and default_compute is not None:
        job_fields["compute"] = default_compute
    deterministic = raw.get("is_deterministic", component.is_deterministic)
    return Step(name=name, kind=kind, component=component, values=values, outputs=outputs,
                pipeline_outputs=pipeline_outputs, job_fields=job_fields,
                sweep={key: raw[key] for key in SWEEP_STEP_KEYS if key in raw},
                display_name=raw.get("display_name"), tags={k: str(v) for k, v in (raw.get("tags") or {}).items()},
                deterministic=bool(deterministic))


def _component_of(raw: dict, kind: str, where: str, base: Path, shown: str, values: dict, resolver) -> Component:
    reference = raw.get("trial") if kind == "sweep" else raw.get("component")
    field_name = "trial" if kind == "sweep" else "component"
    if reference is None:
        if kind == "sweep":
            raise JobSpecError.at(shown, f"{where}.trial", "missing: a sweep step names its trial component")
        if "command" not in raw:
            raise JobSpecError.at(shown, where, "a step needs a command or a component")
        inline = {key: raw[key] for key in ("command", "code", "environment", "is_deterministic") if key in raw}
        inline["name"] = where.split(".", 1)[1]
        inline["inputs"] = {name: {"type": _inferred_type(value)} for name, value in values.items()}
        inline["outputs"] = {name: {k: v for k, v in (spec.items() if isinstance(spec, dict) else ())
                                    if k in ("type", "mode")}
                             for name, spec in (raw.get("outputs") or {}).items()}
        return component_from_mapping(inline, base, shown)
    if isinstance(reference, dict):
        return component_from_mapping(reference, base, shown)
    if not isinstance(reference, str):
        raise JobSpecError.at(shown, f"{where}.{field_name}", "expected a component file or azureml:<name>:<version>")
    if reference.startswith("azureml:"):
        return component_from_mapping(resolver(reference, shown, f"{where}.{field_name}"), base, shown)
    path = (base / reference.removeprefix("file:")).resolve()
    if not path.is_file():
        raise JobSpecError.at(shown, f"{where}.{field_name}", f"{path} is not a component file (relative paths start "
                              "at the pipeline file's folder)")
    return load_component_file(path, shown=str(path))


def _inferred_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "uri_folder"))
    if isinstance(value, str) and _BINDING.match(value):
        return "uri_folder" if ".outputs." in value or ".jobs." in value else "string"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number"}.get(type(value), "string")


def _bound_input(value: Any, where: str, shown: str, base: Path, parent_inputs: dict) -> Any:
    """A step input value: a literal, a data mapping (paths made absolute) or :class:`Upstream`."""
    mode = None
    text = value
    if isinstance(value, dict) and isinstance(value.get("path"), str) and _BINDING.match(value["path"]):
        text, mode = value["path"], value.get("mode")
    if isinstance(text, str) and "${{" in text:
        match = _BINDING.match(text)
        if match is None:
            raise JobSpecError.at(shown, where, f"{text!r} is not a binding; allowed: ${{{{parent.inputs.<name>}}}}, "
                                  "${{parent.jobs.<step>.outputs.<name>}}")
        if match["step"]:
            return Upstream(match["step"], match["output"], mode)
        if match["kind"] == "outputs":
            raise JobSpecError.at(shown, where, "${{parent.outputs...}} binds a step's outputs, not its inputs")
        if match["name"] not in parent_inputs:
            raise JobSpecError.at(shown, where, f"the pipeline has no input {match['name']!r}"
                                  f"{did_you_mean(match['name'], parent_inputs)}; its inputs: "
                                  f"{', '.join(sorted(parent_inputs)) or '(none)'}")
        bound = parent_inputs[match["name"]]
        return {**bound, "mode": mode} if isinstance(bound, dict) and mode else bound
    return _absolute(value, base)


def _step_outputs(raw: dict, component: Component, where: str, shown: str,
                  parent_outputs: dict) -> tuple[dict[str, dict], dict[str, str]]:
    outputs = {name: dict(spec) for name, spec in component.outputs.items()}
    bound: dict[str, str] = {}
    for name, value in (raw.get("outputs") or {}).items():
        if name not in outputs:
            raise JobSpecError.at(shown, f"{where}.outputs.{name}", f"component {component.name!r} has no output "
                                  f"{name!r}{did_you_mean(name, outputs)}; its outputs: "
                                  f"{', '.join(sorted(outputs)) or '(none)'}")
        if isinstance(value, str):
            match = _BINDING.match(value)
            if match is None or match["kind"] != "outputs":
                raise JobSpecError.at(shown, f"{where}.outputs.{name}", f"{value!r}: a step output binds to "
                                      "${{parent.outputs.<name>}} or is a mapping with type and mode")
            if match["name"] not in parent_outputs:
                raise JobSpecError.at(shown, f"{where}.outputs.{name}", f"the pipeline has no output {match['name']!r}"
                                      f"{did_you_mean(match['name'], parent_outputs)}")
            bound[name] = match["name"]
        elif isinstance(value, dict):
            outputs[name].update({k: v for k, v in value.items() if k in ("type", "mode")})
    return outputs, bound


def _check_bindings(steps: Mapping[str, Step], shown: str) -> None:
    for step in steps.values():
        for input_name, value in step.values.items():
            if not isinstance(value, Upstream):
                continue
            where = f"jobs.{step.name}.inputs.{input_name}"
            source = steps.get(value.step)
            if source is None:
                raise JobSpecError.at(shown, where, f"no step named {value.step!r}{did_you_mean(value.step, steps)}; "
                                      f"steps: {', '.join(steps)}")
            if value.output not in source.outputs:
                raise JobSpecError.at(shown, where, f"step {value.step!r} has no output {value.output!r}"
                                      f"{did_you_mean(value.output, source.outputs)}; its outputs: "
                                      f"{', '.join(sorted(source.outputs)) or '(none)'}")
            produced = source.outputs[value.output].get("type", "uri_folder")
            declared = step.component.inputs.get(input_name)
            wanted = declared.type if declared is not None else "uri_folder"
            if wanted in LITERAL_TYPES or wanted not in _COMPATIBLE.get(produced, {produced}):
                raise JobSpecError.at(shown, where, f"type mismatch: output {value.step}.{value.output} is a "
                                      f"{produced}, input {input_name!r} of component {step.component.name!r} "
                                      f"is a {wanted}")


def _topological(steps: Mapping[str, Step], shown: str) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise JobSpecError.at(shown, "jobs", f"the steps form a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for upstream in sorted(steps[name].upstream):
            if upstream in steps:
                visit(upstream, [*path, name])
        state[name] = 2
        order.append(name)

    for name in steps:
        visit(name, [])
    return order


# ------------------------------------------------------------------ small helpers
def _registered_component(reference: str, shown: str, where: str) -> dict:
    from mlflow_workspace_plugin.assets.store import AssetError
    from mlflow_workspace_plugin.jobs.pipeline.registered import registered_component_mapping

    try:
        return registered_component_mapping(reference)
    except AssetError as error:
        raise JobSpecError.at(shown, where, error.message) from None


def _mapping(value: Any, shown: str, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JobSpecError.at(shown, where, f"expected a mapping, got {type(value).__name__}")
    return value


def _flag(settings: dict, key: str, shown: str) -> bool:
    value = settings.get(key, False)
    if not isinstance(value, bool):
        raise JobSpecError.at(shown, f"settings.{key}", f"{value!r}: expected true or false")
    return value


def _absolute(value: Any, base: Path) -> Any:
    """A data mapping whose local ``path`` is made absolute (the step's job file lives elsewhere)."""
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return value
    path = value["path"]
    if "://" in path or path.startswith(("azureml:", "runs:", "models:")) or "${{" in path:
        return dict(value)
    local = path.removeprefix("file:")
    return {**value, "path": str((base / local).resolve())}


def _shown_value(value: Any) -> Any:
    if isinstance(value, Upstream):
        return f"${{{{parent.jobs.{value.step}.outputs.{value.output}}}}}"
    return value


__all__ = ["DATA_TYPES", "PipelineSpec", "Step", "Upstream", "load_pipeline", "pipeline_from_mapping"]
