"""Coalesce journal entries into requests that respect MLflow's ``log_batch`` limits.

Per run the order of logging is kept: a batch is closed (and a new one started) when adding an
entry would exceed 1000 metrics, 100 params, 100 tags, 1000 entities or ~900 kB, or would put a
second value for the same param or tag key into one request (the server rejects duplicate param
keys; for tags the last value must win). A run-status update is a request of its own, after the
run's earlier data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mlflow_workspace_plugin.reliable.entries import METRIC, PARAM, RUN_UPDATE, TAG, Entry

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTITIES = 1000
MAX_BYTES = 900_000  # the server's limit is 1 MB per request body


@dataclass
class Batch:
    """Entries for one request to one run (``log_batch``, or one ``update_run``)."""

    run_id: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def is_update(self) -> bool:
        return len(self.entries) == 1 and self.entries[0].kind == RUN_UPDATE


class _Builder:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.batches: list[Batch] = []
        self._reset()

    def _reset(self) -> None:
        self.current = Batch(self.run_id)
        self.counts = {METRIC: 0, PARAM: 0, TAG: 0}
        self.keys: dict[str, set[str]] = {PARAM: set(), TAG: set()}
        self.size = 0

    def close(self) -> None:
        if self.current.entries:
            self.batches.append(self.current)
        self._reset()

    def fits(self, entry: Entry) -> bool:
        counts = self.counts
        if sum(counts.values()) + 1 > MAX_ENTITIES or self.size + entry.size() > MAX_BYTES:
            return False
        if entry.kind == METRIC:
            return counts[METRIC] < MAX_METRICS
        limit = MAX_PARAMS if entry.kind == PARAM else MAX_TAGS
        return counts[entry.kind] < limit and entry.key not in self.keys[entry.kind]

    def add(self, entry: Entry) -> None:
        if entry.kind == RUN_UPDATE:
            self.close()
            self.batches.append(Batch(self.run_id, [entry]))
            return
        if self.current.entries and not self.fits(entry):
            self.close()
        self.current.entries.append(entry)
        self.counts[entry.kind] += 1
        self.size += entry.size()
        if entry.kind in self.keys:
            self.keys[entry.kind].add(entry.key)


def plan(entries: Iterable[Entry]) -> list[Batch]:
    """Batches for ``entries`` (in logging order): grouped by run, each run's order preserved."""
    builders: dict[str, _Builder] = {}
    for entry in entries:
        builder = builders.get(entry.run_id)
        if builder is None:
            builder = builders[entry.run_id] = _Builder(entry.run_id)
        builder.add(entry)
    out: list[Batch] = []
    for builder in builders.values():
        builder.close()
        out.extend(builder.batches)
    return out


def split(batch: Batch) -> tuple[Batch, Batch]:
    """Two halves of a multi-entry batch (to isolate an entry the server rejects)."""
    middle = len(batch.entries) // 2
    return Batch(batch.run_id, batch.entries[:middle]), Batch(batch.run_id, batch.entries[middle:])
