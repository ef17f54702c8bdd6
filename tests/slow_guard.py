"""pytest plugin (``-p slow_guard`` in pyproject): a test that starts a process - a server, a run, a
CLI subprocess, a Ray job driver - must be marked ``@pytest.mark.slow``, so that
``python -m pytest -m "not slow"`` (the fast tier) stays quick.

Tests that use a fixture starting a server process (:data:`SERVER_FIXTURES`) are marked ``slow``
here, at collection. In the fast tier (a ``-m`` expression with ``not slow``), every
``subprocess.Popen`` started while an unmarked test (or its fixtures) runs fails that test with a
message naming the command. ``git`` is allowed: MLflow asks
it for the commit of a project.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

ALLOWED = {"git"}
# fixtures that start (or hand out) a server process: a real mlflow server, a Ray head
SERVER_FIXTURES = {"mlflow_server", "front_door", "workspace", "ray_head", "ray_workspace"}
_current: dict[str, Any] = {"item": None, "started": []}
_original_init = subprocess.Popen.__init__


def _command_name(args: Any) -> str:
    first = args if isinstance(args, (str, bytes, os.PathLike)) else (list(args)[:1] or [""])[0]
    text = os.fsdecode(first)
    return os.path.basename(text.split()[0]) if text.strip() else ""


def _recording_init(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
    item = _current["item"]
    if item is not None and _command_name(args) not in ALLOWED:
        _current["started"].append(_command_name(args))
    _original_init(self, args, *rest, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    if "not slow" in (config.getoption("markexpr", "") or ""):
        subprocess.Popen.__init__ = _recording_init  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _original_init  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    marked = item.get_closest_marker("slow") is not None
    _current["item"], _current["started"] = (None if marked else item), []
    yield
    _current["item"] = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    started = _current["started"]
    if _current["item"] is item and started and report.when == "call" and report.passed:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} started processes ({', '.join(sorted(set(started)))}) but is not "
                           "marked @pytest.mark.slow: the fast tier (-m 'not slow') must not start any")
