"""Numeric settings from environment variables, with errors naming the variable and what is allowed."""

from __future__ import annotations

import math
import os

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException


def env_number(name: str, default: float, *, allow_zero: bool = True) -> float:
    """``$name`` as a finite number >= 0 (> 0 unless ``allow_zero``), or ``default`` when unset/empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        allowed = "a number >= 0" if allow_zero else "a number > 0"
        raise MlflowException(f"{name}={raw!r} is not allowed: use {allowed}", error_code=INVALID_PARAMETER_VALUE)
    return value
