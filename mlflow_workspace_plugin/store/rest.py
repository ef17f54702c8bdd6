"""MLflow's own REST stores, pointed at a workspace with its bearer token.

Nothing of the REST protocol is re-implemented: ``get_host_creds`` (called before every request)
supplies ``MlflowHostCreds(<workspace REST base>, token=<current token>)``, and a 401/403 answer
is turned into a :class:`~mlflow_workspace_plugin.auth.WorkspaceAuthError` naming the credential.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.rest_store import RestStore as _RegistryRestStore
from mlflow.store.tracking.rest_store import RestStore as _TrackingRestStore

from mlflow_workspace_plugin import auth
from mlflow_workspace_plugin.uri import WorkspaceScope


class _AuthErrors:
    """Mixin: re-raise 401/403 REST errors as one clear auth error (token never included)."""

    scope: WorkspaceScope

    def _call_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._call_endpoint(*args, **kwargs)
        except MlflowException as exc:
            status = auth.http_status_of(exc)
            if status is None:
                raise
            raise auth.rejected(self.scope, status) from None


class WorkspaceTrackingStore(_AuthErrors, _TrackingRestStore):
    """``mlflow.store.tracking.rest_store.RestStore`` for one workspace."""

    def __init__(self, scope: WorkspaceScope) -> None:
        self.scope = scope
        super().__init__(partial(auth.host_creds, scope))


class WorkspaceRegistryStore(_AuthErrors, _RegistryRestStore):
    """``mlflow.store.model_registry.rest_store.RestStore`` for one workspace."""

    def __init__(self, scope: WorkspaceScope) -> None:
        self.scope = scope
        super().__init__(partial(auth.host_creds, scope))

    def _call_webhook_endpoint(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._call_webhook_endpoint(*args, **kwargs)
        except MlflowException as exc:
            status = auth.http_status_of(exc)
            if status is None:
                raise
            raise auth.rejected(self.scope, status) from None
