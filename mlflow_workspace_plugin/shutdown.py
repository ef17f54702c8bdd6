"""One ordered shutdown at interpreter exit, for every layer (ground floor: standard library only).

Whatever must end before the process does registers with :func:`at_exit` under a phase; the one
``atexit`` hook runs the phases in this order, whatever the import order was:

1. ``controllers``: sweeps (and later pipelines) stop starting runs and cancel theirs;
2. ``runs``: local runs still going are cancelled (processes stopped, runs recorded KILLED);
3. ``folders``: private folders of ended runs are removed;
4. ``journal``: what was logged is sent (or left journaled for the background sender).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

PHASES = ("controllers", "runs", "folders", "journal")

_logger = logging.getLogger("mlflow.projects.azureml")
_hooks: dict[str, list[Callable[[], None]]] = {phase: [] for phase in PHASES}
_lock = threading.Lock()
_registered = False


def at_exit(phase: str, callback: Callable[[], None]) -> None:
    """Run ``callback`` at interpreter exit, in ``phase`` (one of :data:`PHASES`); once per callback."""
    global _registered
    if phase not in _hooks:
        raise ValueError(f"unknown shutdown phase {phase!r}; phases: {', '.join(PHASES)}")
    with _lock:
        if callback not in _hooks[phase]:
            _hooks[phase].append(callback)
        if not _registered:
            atexit.register(run_all)
            _registered = True


def run_all() -> None:
    """Run every registered callback, phase by phase (a failing one never stops the others)."""
    for phase in PHASES:
        with _lock:
            callbacks = list(_hooks[phase])
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:  # never fail the interpreter's exit
                _logger.warning("mlflow-workspace: shutdown step %s failed: %s", phase, exc)
