"""Artifact locations the workspace handed out, and the rule for those outside the workspace.

The workspace's stores note every artifact location the server returns (experiments, runs, logged
models). When MLflow then builds an artifact repository for a URI under such a location, the
repository factory asks :func:`check` first:

* inside the workspace (``mlflow-artifacts:``, or ``http(s)`` on the workspace's own scheme, host
  and port) - fine, the workspace token goes with it;
* anywhere else (another ``http(s)`` host, ``file://``, a bare local path) - refused with an error
  naming the experiment and the location, unless ``MLFLOW_WORKSPACE_ALLOW_FOREIGN_ARTIFACTS=true``,
  which uses the location as it is **without** the workspace's credentials.

``http(s)`` requests to any host other than the workspace never carry the workspace token (nor
``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``), whatever their URI came from.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

from mlflow_workspace_plugin.store.session import is_workspace_url
from mlflow_workspace_plugin.uri import WorkspaceScope, redact

ALLOW_FOREIGN_ENV = "MLFLOW_WORKSPACE_ALLOW_FOREIGN_ARTIFACTS"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Origin:
    """Where a location came from: the experiment it belongs to (and what handed it out)."""

    location: str
    experiment_id: str
    experiment_name: str | None = None


_lock = threading.Lock()
_known: dict[tuple[WorkspaceScope, str], Origin] = {}


def allow_foreign() -> bool:
    return os.environ.get(ALLOW_FOREIGN_ENV, "").strip().lower() in _TRUE


def is_inside(scope: WorkspaceScope, location: str) -> bool:
    """True for locations the workspace serves itself (its token may go there)."""
    scheme = urlsplit(location).scheme.lower()
    if scheme == "mlflow-artifacts":
        netloc = urlsplit(location).netloc
        return not netloc or netloc == scope.host
    return scheme in ("http", "https") and is_workspace_url(scope, location)


def remember(scope: WorkspaceScope, location: str | None, experiment_id: str | None,
             experiment_name: str | None = None) -> None:
    """Note an artifact location the workspace returned (only those outside it matter)."""
    if not location or not isinstance(location, str) or is_inside(scope, location):
        return
    key = (scope, _normal(location))
    with _lock:
        known = _known.get(key)
        if known is None or (experiment_name and not known.experiment_name):
            _known[key] = Origin(location, str(experiment_id or ""), experiment_name or (
                known.experiment_name if known else None))


def origin_of(scope: WorkspaceScope, artifact_uri: str) -> Origin | None:
    """The noted location ``artifact_uri`` is (under), or None if it did not come from the workspace."""
    target = _normal(artifact_uri)
    with _lock:
        matches = [(loc, origin) for (s, loc), origin in _known.items()
                   if s == scope and (target == loc or target.startswith(loc.rstrip("/") + "/"))]
    if not matches:
        return None
    return max(matches, key=lambda item: len(item[0]))[1]


def check(scope: WorkspaceScope, artifact_uri: str,
          experiment_name: Callable[[str], str | None] = lambda experiment_id: None) -> None:
    """Raise :class:`ForeignArtifactLocation` if ``artifact_uri`` is a location outside the
    workspace that the workspace handed out, unless the user allowed such locations.
    ``experiment_name`` looks the experiment's name up when it was not noted with the location."""
    origin = origin_of(scope, artifact_uri)
    if origin is None or allow_foreign():
        return
    raise ForeignArtifactLocation(scope, origin, origin.experiment_name or experiment_name(origin.experiment_id))


class NotesArtifactLocations:
    """Tracking-store mixin: notes the artifact locations in what the workspace returns."""

    scope: WorkspaceScope

    def _note_run(self, run: Any) -> Any:
        info = getattr(run, "info", None)
        if info is not None:
            remember(self.scope, info.artifact_uri, info.experiment_id)
        return run

    def _note_experiment(self, experiment: Any) -> Any:
        if experiment is not None:
            remember(self.scope, experiment.artifact_location, experiment.experiment_id, experiment.name)
        return experiment

    def _note_model(self, model: Any) -> Any:
        if model is not None:
            remember(self.scope, getattr(model, "artifact_location", None), getattr(model, "experiment_id", None))
        return model

    def create_run(self, *args: Any, **kwargs: Any) -> Any:
        return self._note_run(super().create_run(*args, **kwargs))

    def get_run(self, run_id: str) -> Any:
        return self._note_run(super().get_run(run_id))

    def search_runs_page(self, *args: Any, **kwargs: Any) -> Any:
        runs, token = super().search_runs_page(*args, **kwargs)
        for run in runs:
            self._note_run(run)
        return runs, token

    def get_experiment(self, experiment_id: str) -> Any:
        return self._note_experiment(super().get_experiment(experiment_id))

    def get_experiment_by_name(self, experiment_name: str) -> Any:
        return self._note_experiment(super().get_experiment_by_name(experiment_name))

    def search_experiments(self, *args: Any, **kwargs: Any) -> Any:
        experiments = super().search_experiments(*args, **kwargs)
        for experiment in experiments:
            self._note_experiment(experiment)
        return experiments

    def create_logged_model(self, *args: Any, **kwargs: Any) -> Any:
        return self._note_model(super().create_logged_model(*args, **kwargs))

    def get_logged_model(self, *args: Any, **kwargs: Any) -> Any:
        return self._note_model(super().get_logged_model(*args, **kwargs))


class ForeignArtifactLocation(MlflowException):
    """An experiment of the workspace keeps its artifacts outside the workspace."""

    def __init__(self, scope: WorkspaceScope, origin: Origin, experiment_name: str | None) -> None:
        named = f"{experiment_name!r} (id {origin.experiment_id})" if experiment_name else f"id {origin.experiment_id}"
        where = _describe(origin.location)
        super().__init__(
            f"Experiment {named} of workspace {scope.workspace_name!r} stores its artifacts at "
            f"{redact(origin.location)!r}, {where}, outside the workspace ({scope.host}). The plugin sends "
            "the workspace's credentials only to the workspace itself and does not write a workspace's "
            "artifacts onto this machine, so it refuses this location. Use an experiment whose artifacts "
            "live in the workspace (one created without an artifact_location), or set "
            f"{ALLOW_FOREIGN_ENV}=true to use this location as it is, without the workspace's credentials.",
            error_code=PERMISSION_DENIED,
        )


def _describe(location: str) -> str:
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return f"another host ({redact(parts.netloc)})"
    if scheme == "file" or not scheme or len(scheme) == 1:  # bare path, or a Windows drive letter
        return "a folder on this machine"
    return f"a {scheme}: location"


def _normal(location: str) -> str:
    text = location.strip()
    if text.startswith("file://"):
        text = "file://" + text[len("file://"):].replace("//", "/")
    elif "://" not in text and ":" not in text.split("/", 1)[0]:
        text = os.path.normpath(text)
    return text.rstrip("/")


def forget_all() -> None:
    """Tests: drop every noted location."""
    with _lock:
        _known.clear()
