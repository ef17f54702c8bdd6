"""The one exception type for job-definition mistakes, and helpers that phrase its messages.

Every message reads ``<file>: <field.path>: <what is wrong>; <what is allowed>`` so that a user can
go straight to the line to fix; nothing in here ever shows pydantic's raw multi-line dump.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException


class JobSpecError(MlflowException):
    """A job YAML (or a value given for it) is wrong: the message names the file, the field and what is allowed."""

    def __init__(self, message: str, *, source_file: Path | str | None = None, field: str | None = None) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
        self.source_file = str(source_file) if source_file is not None else None
        self.field = field

    @classmethod
    def at(cls, source_file: Path | str | None, field: str | None, problem: str) -> JobSpecError:
        """An error about ``field`` (a dotted path such as ``inputs.iris.mode``) of ``source_file``."""
        return cls(located(source_file, field, problem), source_file=source_file, field=field)


class JobInputError(JobSpecError):
    """An input could not be materialised (unreachable URL, missing run artifact, ...)."""


class JobLaunchError(JobSpecError):
    """Something the job needs on this machine is missing (e.g. ``mpirun`` for ``distribution.type: mpi``)."""


def located(source_file: Path | str | None, field: str | None, problem: str) -> str:
    """``file: field: problem`` with the parts that are known."""
    parts = [str(p) for p in (source_file, field) if p]
    return ": ".join([*parts, problem])


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (difflib), or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    hint = closest(word, candidates)
    return f" (did you mean {hint!r}?)" if hint else ""


def allowed_list(values: Iterable[str]) -> str:
    """``a, b, c`` or ``(none declared)``."""
    values = list(values)
    return ", ".join(values) if values else "(none declared)"
