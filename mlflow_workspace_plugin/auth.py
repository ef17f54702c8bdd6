"""Bearer tokens for ``azureml://`` workspaces: where they come from, caching, and clear errors.

Token source, first match wins (checked on every request, so changes take effect at once):

1. ``$MLFLOW_TRACKING_TOKEN`` - a static token (self-hosted servers, tests, child processes).
2. A credential registered for the workspace URI with :func:`register_credential`
   (``Workspace(..., credential=cred).get_mlflow_tracking_uri()`` does this).
3. azure-identity ``DefaultAzureCredential`` with interactive and broker prompts excluded.

Credential tokens (scope :data:`ARM_SCOPE`) are cached and refreshed
:data:`REFRESH_MARGIN_SECONDS` before they expire, under a lock. Tokens are never logged and
never put into exception messages.

:func:`refreshing` is the one place that implements "on 401, drop the rejected token, fetch a
fresh one and try once more": REST calls, artifact transfers and the background sender use it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from mlflow_workspace_plugin.uri import SCHEME, WorkspaceScope, parse_workspace_uri

if TYPE_CHECKING:
    from mlflow.utils.rest_utils import MlflowHostCreds

TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
ARM_SCOPE = "https://management.azure.com/.default"
REFRESH_MARGIN_SECONDS = 300.0
DEFAULT_CREDENTIAL = "DefaultAzureCredential"
_AZURE_LOGGERS = (
    "azure.identity._credentials.chained",
    "azure.identity._credentials.default",
    "azure.identity._internal.decorators",
    "azure.identity._internal.get_token_mixin",
)

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class WorkspaceAuthError(MlflowException):
    """No token could be obtained, or the workspace rejected the one that was sent."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message, error_code=PERMISSION_DENIED if status == 403 else UNAUTHENTICATED)


class CachedCredential:
    """An azure-core style credential (``get_token`` / ``get_token_info``) plus a token cache."""

    def __init__(self, credential: Any, name: str | None = None) -> None:
        if not (hasattr(credential, "get_token") or hasattr(credential, "get_token_info")):
            raise TypeError(
                f"credential {type(credential).__name__} has neither get_token() nor get_token_info(); "
                "pass an azure-identity credential or any object returning azure.core AccessToken"
            )
        self.credential = credential
        self.name = name or type(credential).__name__
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_on = 0.0

    def token(self) -> str:
        """A valid token, fetched again when it is within the refresh margin of expiry."""
        with self._lock:
            now = time.time()
            if self._token is not None and now < self._refresh_at:
                return self._token
            try:
                access = self._fetch()
            except Exception:
                if self._token is not None and now < self._expires_on - 30:
                    _logger.warning("Refreshing the %s token failed; using the cached token until "
                                    "it expires", self.name)
                    return self._token
                raise
            token, expires_on = getattr(access, "token", None), getattr(access, "expires_on", None)
            if not isinstance(token, str) or not token or expires_on is None:
                raise WorkspaceAuthError(f"Credential {self.name} returned no usable access token "
                                         "(expected an object with .token and .expires_on)")
            self._token, self._expires_on = token, float(expires_on)
            refresh_on = getattr(access, "refresh_on", None)  # AccessTokenInfo hint
            self._refresh_at = self._expires_on - REFRESH_MARGIN_SECONDS
            if refresh_on:
                self._refresh_at = min(self._refresh_at, float(refresh_on))
            return token

    def invalidate(self, token: str | None = None) -> bool:
        """Drop the cached token (only if it is ``token``, when given: another thread may already
        have replaced it). True: the next :meth:`token` call may return a different token."""
        with self._lock:
            if token is None or token == self._token:
                self._token, self._refresh_at, self._expires_on = None, 0.0, 0.0
            return True

    def known_token(self) -> str | None:
        return self._token

    def _fetch(self) -> Any:
        if hasattr(self.credential, "get_token"):
            return self.credential.get_token(ARM_SCOPE)
        return self.credential.get_token_info(ARM_SCOPE)


_registry_lock = threading.Lock()
_registered: dict[WorkspaceScope, CachedCredential] = {}
_default: CachedCredential | None = None
_quiet = threading.local()


# --------------------------------------------------------------------------- public API
def register_credential(uri: str, credential: Any) -> None:
    """Use ``credential`` for the workspace of tracking URI ``uri`` (unless the env token is set)."""
    scope = parse_workspace_uri(uri)
    cached = CachedCredential(credential)
    with _registry_lock:
        current = _registered.get(scope)
        if current is None or current.credential is not credential:
            _registered[scope] = cached


def unregister_credential(uri: str) -> None:
    """Forget the credential registered for ``uri`` (no-op if none)."""
    with _registry_lock:
        _registered.pop(parse_workspace_uri(uri), None)


def credential_source(scope: WorkspaceScope) -> str:
    """Name of the source :func:`get_token` uses now for ``scope``."""
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    registered = _registered.get(scope)
    return registered.name if registered else DEFAULT_CREDENTIAL


def get_token(scope: WorkspaceScope) -> str:
    """The bearer token for ``scope`` (see module docstring for the order of sources)."""
    env_token = os.environ.get(TOKEN_ENV)
    if env_token:
        return env_token
    registered = _registered.get(scope)
    if registered is not None:
        try:
            return registered.token()
        except WorkspaceAuthError:
            raise
        except Exception as exc:
            raise WorkspaceAuthError(
                f"Credential {registered.name} registered for workspace {_where(scope)} could not get "
                f"a token: {type(exc).__name__}: {_first_line(exc)}. Fix the credential, or set "
                f"{TOKEN_ENV} to a valid token for this workspace."
            ) from None
    return _default_token(scope)


def invalidate_token(scope: WorkspaceScope, token: str | None = None) -> bool:
    """Forget the cached credential token for ``scope`` after the workspace rejected ``token``
    (HTTP 401), so the next request fetches a fresh one. True if a retry may get another token;
    False for a static ``$MLFLOW_TRACKING_TOKEN`` (nothing to refresh)."""
    if os.environ.get(TOKEN_ENV):
        return bool(token) and os.environ.get(TOKEN_ENV) != token
    with _registry_lock:
        cached = _registered.get(scope) or _default
    return cached.invalidate(token) if cached is not None else False


def current_token(scope: WorkspaceScope) -> str | None:
    """The token the next request for ``scope`` will carry if it is known without fetching one."""
    env_token = os.environ.get(TOKEN_ENV)
    if env_token:
        return env_token
    with _registry_lock:
        cached = _registered.get(scope) or _default
    return cached.known_token() if cached is not None else None


def can_refresh(scope: WorkspaceScope) -> bool:
    """False when the token is a static ``$MLFLOW_TRACKING_TOKEN``: a rejected one cannot heal."""
    return not os.environ.get(TOKEN_ENV)


def refreshing(scope: WorkspaceScope, attempt: Callable[[], _T]) -> _T:
    """Run ``attempt`` (one request or operation that sends the workspace token). If the workspace
    answers 401, drop the token it rejected and run ``attempt`` once more, with a fresh token; a
    401 or 403 after that (or a 403 at once) raises :func:`rejected`, which names the credential.

    ``attempt`` signals the answer by raising an MLflow REST error or a ``requests`` ``HTTPError``
    with the response (see :func:`http_status_of`); anything else passes through unchanged.
    """
    sent = current_token(scope)
    try:
        return attempt()
    except Exception as exc:
        status = http_status_of(exc)
        if status is None:
            raise
        if status == 401 and invalidate_token(scope, sent):
            try:
                return attempt()
            except Exception as again:
                status = http_status_of(again)
                if status is None:
                    raise
        raise rejected(scope, status) from None


def host_creds(scope: WorkspaceScope, host: str | None = None) -> MlflowHostCreds:
    """``MlflowHostCreds`` for one request to ``host`` (default: the workspace REST base)."""
    from mlflow.environment_variables import (
        MLFLOW_TRACKING_CLIENT_CERT_PATH,
        MLFLOW_TRACKING_INSECURE_TLS,
        MLFLOW_TRACKING_SERVER_CERT_PATH,
    )
    from mlflow.utils.rest_utils import MlflowHostCreds

    return MlflowHostCreds(
        host or scope.rest_base_url,
        token=get_token(scope),
        ignore_tls_verification=MLFLOW_TRACKING_INSECURE_TLS.get(),
        client_cert_path=MLFLOW_TRACKING_CLIENT_CERT_PATH.get(),
        server_cert_path=MLFLOW_TRACKING_SERVER_CERT_PATH.get(),
    )


def child_environment(tracking_uri: str) -> dict[str, str]:
    """Env vars a child process needs to log to the same workspace (pass them in the env only).

    ``{"MLFLOW_TRACKING_TOKEN": <current token>}`` for an ``azureml://`` URI, ``{}`` otherwise.
    The token is a snapshot: a child running longer than the token's lifetime must be given a
    fresh one (AAD tokens usually last 60-90 minutes).
    """
    if not isinstance(tracking_uri, str) or urlsplit(tracking_uri).scheme != SCHEME:
        return {}
    return {TOKEN_ENV: get_token(parse_workspace_uri(tracking_uri))}


def http_status_of(exc: BaseException) -> int | None:
    """401/403 if ``exc`` (an MLflow REST error or a requests ``HTTPError``) is an auth failure."""
    if isinstance(exc, WorkspaceAuthError):
        return None
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status in (401, 403):
        return status
    if isinstance(exc, MlflowException):
        status = exc.get_http_status_code()
        if status in (401, 403):
            return status
        body = getattr(exc, "json", None)  # RestException with a gateway (non-MLflow) error body
        code = body.get("error", {}).get("code", "") if isinstance(body, dict) and isinstance(
            body.get("error"), dict) else ""
        if re.search(r"authenticat|unauthori[sz]ed|invalid.*token|token.*expired", str(code), re.I):
            return 401
        if re.search(r"authori[sz]ationfailed|forbidden", str(code), re.I):
            return 403
    return None


def rejected(scope: WorkspaceScope, status: int) -> WorkspaceAuthError:
    """The error for a 401/403 answer: names the credential source tried and how to fix it."""
    source = credential_source(scope)
    what = ("did not accept the credentials (HTTP 401 Unauthorized)" if status != 403 else
            "refused access (HTTP 403 Forbidden): the identity is known but has no access to it")
    if source == TOKEN_ENV:
        fix = (f"{TOKEN_ENV} is set, so its value was sent as the bearer token: replace it with a "
               "valid, unexpired token for this workspace, or unset it to use a registered "
               f"credential or {DEFAULT_CREDENTIAL}.")
    elif source == DEFAULT_CREDENTIAL:
        fix = ("Sign in with an identity that has access to the workspace (e.g. `az login` with the "
               "right tenant, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), pass "
               f"Workspace(credential=...), or set {TOKEN_ENV}.")
    else:
        fix = (f"The credential {source} passed via Workspace(credential=...) was used: give its "
               f"identity access to the workspace, or pass another credential, or set {TOKEN_ENV}.")
    return WorkspaceAuthError(f"Workspace {_where(scope)} {what}. Credential source tried: {source}. "
                              f"{fix}", status=status)


def reset() -> None:
    """Forget registered credentials and the cached DefaultAzureCredential (tests, re-login)."""
    global _default
    with _registry_lock:
        _registered.clear()
        _default = None


# --------------------------------------------------------------------------- internals
def _where(scope: WorkspaceScope) -> str:
    return f"{scope.workspace_name!r} at {scope.host}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "(no message)"


def _default_credential() -> CachedCredential:
    global _default
    with _registry_lock:
        if _default is None:
            from azure.identity import DefaultAzureCredential

            options = {"exclude_interactive_browser_credential": True,
                       "exclude_broker_credential": True}
            try:
                credential = DefaultAzureCredential(**options)
            except TypeError:  # older azure-identity without the broker option
                options.pop("exclude_broker_credential")
                credential = DefaultAzureCredential(**options)
            _default = CachedCredential(credential, DEFAULT_CREDENTIAL)
        return _default


def _default_token(scope: WorkspaceScope) -> str:
    try:
        cached = _default_credential()
        _install_quiet_filter()
        _quiet.active = True
        try:
            return cached.token()
        finally:
            _quiet.active = False
    except ImportError:
        tried = "azure-identity is not installed"
    except Exception as exc:  # ClientAuthenticationError and friends: summarise, don't chain
        names = re.findall(r"^\s+(\w+Credential):", str(exc), re.M)
        tried = ("it tried " + ", ".join(names) + " and none could get a token") if names else (
            f"{type(exc).__name__}: {_first_line(exc)}")
    raise WorkspaceAuthError(
        f"No credential for workspace {_where(scope)}: {TOKEN_ENV} is not set, no credential was "
        f"registered for this tracking URI, and {DEFAULT_CREDENTIAL} found no identity ({tried}). "
        f"Fix: sign in with `az login` (or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, "
        f"or use a managed identity), pass Workspace(credential=...), or set {TOKEN_ENV}."
    ) from None


class _QuietFilter(logging.Filter):
    """Drops azure-identity's multi-line failure warnings while we summarise them ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False)


_quiet_filter = _QuietFilter()


def _install_quiet_filter() -> None:
    for name in _AZURE_LOGGERS:
        log = logging.getLogger(name)
        if _quiet_filter not in log.filters:
            log.addFilter(_quiet_filter)
