"""MLflow's own REST stores, pointed at a workspace with its bearer token.

Nothing of the REST protocol is re-implemented: ``get_host_creds`` (called before every request)
supplies ``MlflowHostCreds(<workspace REST base>, token=<current token>)``; a 401 answer makes the
credential cache drop its token and the request is retried once; a 401/403 after that is turned
into a :class:`~mlflow_workspace_plugin.auth.WorkspaceAuthError` naming the credential.

Run data (metrics, params, tags, run-status updates) goes through reliable logging
(:mod:`mlflow_workspace_plugin.reliable`): journaled locally, sent in batches in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.rest_store import RestStore as _RegistryRestStore
from mlflow.store.tracking.rest_store import RestStore as _TrackingRestStore

from mlflow_workspace_plugin import auth
from mlflow_workspace_plugin.store.reliable_store import ReliableLogging
from mlflow_workspace_plugin.uri import WorkspaceScope


class _AuthErrors:
    """Mixin: one token refresh on 401, then 401/403 as one clear auth error (token never included)."""

    scope: WorkspaceScope

    def _authenticated(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except MlflowException as exc:
            status = auth.http_status_of(exc)
            if status is None:
                raise
            if status == 401 and auth.invalidate_token(self.scope):
                try:
                    return call(*args, **kwargs)
                except MlflowException as again:
                    status = auth.http_status_of(again)
                    if status is None:
                        raise
            raise auth.rejected(self.scope, status) from None

    def _call_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        return self._authenticated(super()._call_endpoint, *args, **kwargs)


class WorkspaceTrackingStore(ReliableLogging, _AuthErrors, _TrackingRestStore):
    """``mlflow.store.tracking.rest_store.RestStore`` for one workspace, with reliable logging."""

    def __init__(self, scope: WorkspaceScope, tracking_uri: str | None = None) -> None:
        self.scope = scope
        _TrackingRestStore.__init__(self, partial(auth.host_creds, scope))
        self._init_reliable(scope, tracking_uri or scope.tracking_uri)


class WorkspaceRegistryStore(_AuthErrors, _RegistryRestStore):
    """``mlflow.store.model_registry.rest_store.RestStore`` for one workspace."""

    def __init__(self, scope: WorkspaceScope) -> None:
        self.scope = scope
        super().__init__(partial(auth.host_creds, scope))

    def _call_webhook_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        return self._authenticated(super()._call_webhook_endpoint, *args, **kwargs)
