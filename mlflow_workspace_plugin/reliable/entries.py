"""Journal entries: one metric point, param, tag or run-status update, and their JSON payloads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

METRIC, PARAM, TAG, RUN_UPDATE = "metric", "param", "tag", "run_update"
DATA_KINDS = (METRIC, PARAM, TAG)


@dataclass
class Entry:
    """One unit of logged data. ``seq`` is its journal row id (its order of logging)."""

    run_id: str
    kind: str
    key: str
    payload: dict[str, Any]
    seq: int = 0
    ticket: Any = field(default=None, repr=False, compare=False)

    def encoded(self) -> str:
        return json.dumps(self.payload, separators=(",", ":"))  # NaN/Infinity round-trip in Python

    def size(self) -> int:
        """Rough bytes this entry adds to a request body (for the 1 MB request limit)."""
        value = self.payload.get("value")
        return len(self.key) + (len(value) if isinstance(value, str) else 24) + 64

    def to_metric(self) -> Metric:
        p = self.payload
        return Metric(self.key, p["value"], p["timestamp"], p["step"], model_id=p.get("model_id"),
                      dataset_name=p.get("dataset_name"), dataset_digest=p.get("dataset_digest"))

    def to_param(self) -> Param:
        return Param(self.key, self.payload["value"])

    def to_tag(self) -> RunTag:
        return RunTag(self.key, self.payload["value"])


class BadEntry(ValueError):
    """A journal row that cannot be sent as it is (``str(exc)`` says why, in words)."""


_NUMBER = (int, float)


def decode(seq: int, run_id: str, kind: str, key: str, payload: str) -> Entry:
    """The entry of one journal row; :class:`BadEntry` if the row is damaged (not JSON, or not the
    shape its kind needs), so one torn row never stops the rest of a journal."""
    if not isinstance(run_id, str) or not run_id or not isinstance(key, str):
        raise BadEntry("its run id or key is missing")
    if not isinstance(payload, str):
        raise BadEntry(f"its payload is {type(payload).__name__}, not JSON text")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise BadEntry(f"its payload is not JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                       ) from None
    if not isinstance(data, dict):
        raise BadEntry("its payload is not a JSON object")
    problem = _shape_problem(kind, data)
    if problem:
        raise BadEntry(problem)
    return Entry(run_id, kind, key, data, seq)


def _shape_problem(kind: str, data: dict[str, Any]) -> str | None:
    """Why ``data`` cannot be the payload of a ``kind`` entry (None if it can)."""
    def number(name: str, integral: bool = False) -> bool:
        value = data.get(name)
        return isinstance(value, int if integral else _NUMBER) and not isinstance(value, bool)

    if kind == METRIC:
        if not number("value"):
            return f"its metric value {data.get('value')!r} is not a number"
        if not number("timestamp", True) or not number("step", True):
            return "its metric timestamp or step is not an integer"
        return None
    if kind in (PARAM, TAG):
        return None if isinstance(data.get("value"), str) else f"its {kind} value is not text"
    if kind == RUN_UPDATE:
        fine = all(data.get(n) is None or number(n, True) for n in ("status", "end_time")) and (
            data.get("run_name") is None or isinstance(data.get("run_name"), str))
        return None if fine else "its run update is malformed"
    return f"its kind {kind!r} is unknown (expected one of metric, param, tag, run_update)"


def from_batch(run_id: str, metrics: Iterable[Metric] = (), params: Iterable[Param] = (),
               tags: Iterable[RunTag] = ()) -> list[Entry]:
    """Entries for one ``log_batch`` call (params, then metrics, then tags, as the server applies)."""
    if not isinstance(run_id, str) or not run_id:
        raise MlflowException(f"Invalid run id {run_id!r}", INVALID_PARAMETER_VALUE)
    out = [Entry(run_id, PARAM, str(p.key), {"value": _text(p.value)}) for p in params]
    for m in metrics:
        try:
            value = float(m.value)
        except (TypeError, ValueError):
            raise MlflowException(f"Metric {m.key!r} value {m.value!r} is not a number",
                                  INVALID_PARAMETER_VALUE) from None
        payload: dict[str, Any] = {"value": value, "timestamp": int(m.timestamp), "step": int(m.step or 0)}
        for name in ("model_id", "dataset_name", "dataset_digest"):
            if getattr(m, name, None):
                payload[name] = getattr(m, name)
        out.append(Entry(run_id, METRIC, str(m.key), payload))
    out.extend(Entry(run_id, TAG, str(t.key), {"value": _text(t.value)}) for t in tags)
    return out


def run_update(run_id: str, status: int | None, end_time: int | None, run_name: str | None) -> Entry:
    """A ``UpdateRun`` (status as the RunStatus enum int) queued behind the run's data."""
    return Entry(run_id, RUN_UPDATE, "", {"status": status, "end_time": end_time, "run_name": run_name})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
