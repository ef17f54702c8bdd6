"""MLflow's own REST stores, pointed at a workspace with its bearer token.

The stores are MLflow's (request and response protos, endpoints, entities); only the last step,
sending one request (:mod:`~mlflow_workspace_plugin.mlflow_compat` routes MLflow's private request
step to ``send``), goes through :class:`~mlflow_workspace_plugin.store.session.WorkspaceSession`:
the workspace token, one token refresh on 401, 401/403 as one
:class:`~mlflow_workspace_plugin.auth.WorkspaceAuthError` naming the credential, and retries of an
unreachable or throttling workspace bounded by ``MLFLOW_WORKSPACE_CONNECT_TIMEOUT`` with
``Retry-After`` capped - instead of MLflow's minutes of retries and uncapped ``Retry-After``.

Run data (metrics, params, tags, run-status updates) goes through reliable logging
(:mod:`mlflow_workspace_plugin.reliable`): journaled locally, sent in batches in the background.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import verify_rest_response

from mlflow_workspace_plugin import auth, mlflow_compat
from mlflow_workspace_plugin.store.artifact_locations import NotesArtifactLocations
from mlflow_workspace_plugin.store.artifacts import install_guard
from mlflow_workspace_plugin.store.reliable_store import ReliableLogging
from mlflow_workspace_plugin.store.session import WorkspaceSession
from mlflow_workspace_plugin.uri import WorkspaceScope


class _WorkspaceCalls:
    """Mixin: MLflow's ``call_endpoint`` (json body, status check, proto parsing) over a
    :class:`WorkspaceSession`."""

    scope: WorkspaceScope
    session: WorkspaceSession

    def send(self, endpoint: str, method: str, json_body: str | None, response_proto: Any,
             extra_headers: dict[str, str] | None = None, expected_status: int = 200) -> Any:
        body = json.loads(json_body) if json_body is not None else None
        payload = {"params": body} if method == "GET" else {"json": body}
        response = self.session.request(method, endpoint, headers=extra_headers, **payload)
        response = verify_rest_response(response, endpoint, expected_status=expected_status)
        if response.status_code == 204:
            return response_proto
        parse_dict(js_dict=json.loads(response.text), message=response_proto)
        return response_proto


class WorkspaceTrackingStore(NotesArtifactLocations, ReliableLogging, _WorkspaceCalls, mlflow_compat.TrackingRestStore):
    """``mlflow.store.tracking.rest_store.RestStore`` for one workspace, with reliable logging;
    notes the artifact locations the workspace hands out (see :mod:`.artifact_locations`)."""

    def __init__(self, scope: WorkspaceScope, tracking_uri: str | None = None) -> None:
        self.scope = scope
        self.session = WorkspaceSession(scope)
        install_guard()
        mlflow_compat.TrackingRestStore.__init__(self, partial(auth.host_creds, scope))
        self._init_reliable(scope, tracking_uri or scope.tracking_uri)


class WorkspaceRegistryStore(_WorkspaceCalls, mlflow_compat.RegistryRestStore):
    """``mlflow.store.model_registry.rest_store.RestStore`` for one workspace."""

    def __init__(self, scope: WorkspaceScope) -> None:
        self.scope = scope
        self.session = WorkspaceSession(scope)
        super().__init__(partial(auth.host_creds, scope))
