"""Validate entry-point parameters against the MLproject before a run is created."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import ExecutionException

if TYPE_CHECKING:
    from mlflow_workspace_plugin.mlflow_compat import Project

_NUMERIC = {"float": float, "double": float, "int": int, "integer": int, "long": int}


def normalise_parameters(params: Mapping[str, Any] | None) -> dict[str, str]:
    """MLflow passes parameters as given (API) or as strings (CLI); keys must be strings."""
    result: dict[str, str] = {}
    for key, value in (params or {}).items():
        if not isinstance(key, str) or not key:
            raise ExecutionException(f"Parameter names must be non-empty strings, got {key!r}")
        if value is None:
            raise ExecutionException(f"Parameter {key!r} has no value (None); give a value or drop it")
        result[key] = value if isinstance(value, str) else str(value)
    return result


def validate_parameters(project: Project, entry_point: str, params: Mapping[str, str]) -> None:
    """Numeric parameters must be numeric; raise naming the value otherwise. (Unknown entry points
    and missing required parameters are already refused by MLflow's fetch_and_validate_project.)"""
    entry = project.get_entry_point(entry_point)
    if entry is None:
        return
    for name, spec in entry.parameters.items():
        value = params.get(name, spec.default)
        caster = _NUMERIC.get(str(spec.type).lower())
        if caster is None or value is None:
            continue
        try:
            number = caster(str(value).strip()) if caster is float else int(str(value).strip())
        except ValueError:
            raise ExecutionException(
                f"Parameter {name!r} of entry point {entry_point!r} must be of type {spec.type}, "
                f"got {value!r}"
            ) from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ExecutionException(
                f"Parameter {name!r} of entry point {entry_point!r} must be a finite {spec.type}, "
                f"got {value!r}"
            )
