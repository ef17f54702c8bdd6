"""HTTP for the calls a user waits on (run creation, reads, model registry): one bounded policy.

:meth:`WorkspaceSession.request` sends one request to the workspace with its bearer token and:

* on 401 drops the rejected token and tries once more with a fresh one
  (:func:`~mlflow_workspace_plugin.auth.refreshing`); 401/403 after that -> one
  :class:`~mlflow_workspace_plugin.auth.WorkspaceAuthError` naming the credential;
* retries connection failures, 408/425/429/502/503/504 and 500s without an MLflow error body with
  the one retry policy (:data:`~mlflow_workspace_plugin.reliable.retry.CALLS`, tenacity: 0.25 s
  doubling, at most 4 s), honouring ``Retry-After`` up to
  :data:`~mlflow_workspace_plugin.reliable.settings.MAX_RETRY_AFTER` (60 s), all within
  ``MLFLOW_WORKSPACE_CONNECT_TIMEOUT`` (30 s) in total; after
  :data:`~mlflow_workspace_plugin.reliable.settings.CALL_PROGRESS_AFTER` seconds of retrying it
  says so on stderr;
* fails at once for what retrying cannot fix (TLS errors, an unknown host name) and when the
  server asks for a longer wait than is left, with :class:`WorkspaceUnreachable` naming the
  workspace, the host, the request, the cause (or status) and the wait asked for.

Only requests to the workspace's own origin (scheme, host, port) carry the token; anything else is
refused before it is sent.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from mlflow_workspace_plugin import auth
from mlflow_workspace_plugin.reliable import settings
from mlflow_workspace_plugin.reliable.http_failures import (
    TRANSIENT_STATUS,
    cause_of,
    is_permanent,
    raise_for_auth,
    retry_after,
    status_text,
)
from mlflow_workspace_plugin.reliable.retry import CALLS
from mlflow_workspace_plugin.uri import WorkspaceScope, redact

CONNECT_TIMEOUT_CAP = 10.0  # one connection attempt never waits longer than this
PROGRESS_EVERY = 10.0


class _Again(Exception):
    """A failure worth another attempt: ``str`` is its cause in words, ``asked`` the server's wait."""

    def __init__(self, cause: str, asked: float | None = None) -> None:
        super().__init__(cause)
        self.asked = asked


class _Final(Exception):
    """A failure retrying cannot fix (TLS, an unknown host name): ``str`` is its cause."""


class WorkspaceUnreachable(MlflowException):
    """The workspace could not be reached, or kept answering "not now", within the time limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=TEMPORARILY_UNAVAILABLE)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url`` with the default port filled in, for same-host checks."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def is_workspace_url(scope: WorkspaceScope, url: str) -> bool:
    """True if ``url`` goes to the workspace's own origin (the only place its token may go)."""
    return origin(url) == origin(scope.rest_base_url)


def _mlflow_error_body(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error_code" in body


class WorkspaceSession:
    """Bounded, authenticated requests to one workspace (one ``requests.Session`` per thread)."""

    def __init__(self, scope: WorkspaceScope) -> None:
        self.scope = scope
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=8)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        return session

    def url_for(self, endpoint: str) -> str:
        """``endpoint`` (``/api/2.0/...``) under the workspace REST base, or a full workspace URL."""
        if endpoint.startswith(("http://", "https://")):
            if not is_workspace_url(self.scope, endpoint):
                raise MlflowException(
                    f"Refusing to send the credentials of workspace {self.scope.workspace_name!r} to "
                    f"{redact(endpoint)!r}: they only go to the workspace itself ({self.scope.host}).")
            return endpoint
        return self.scope.rest_base_url.rstrip("/") + endpoint

    def request(self, method: str, endpoint: str, *, read_timeout: float | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """Send ``method`` ``endpoint`` with the workspace's auth and retry policy (module doc).
        Returns the answer for any status that is not retried (the caller checks it); ``data``
        must be bytes or a callable returning a fresh body per attempt (it may be sent twice)."""
        url = self.url_for(endpoint)
        what = f"{method} {urlsplit(url).path.split('/api/', 1)[-1] if '/api/' in url else endpoint}"
        limit = settings.connect_timeout()
        read = read_timeout if read_timeout is not None else _mlflow_read_timeout()
        started = time.monotonic()
        deadline = started + limit
        announced_at: list[float | None] = [None]

        def attempt() -> requests.Response:
            left = deadline - time.monotonic()
            timeout = (max(0.5, min(CONNECT_TIMEOUT_CAP, left)), read)
            try:
                response = auth.refreshing(self.scope, functools.partial(
                    self._send_checked, method, url, headers, timeout, kwargs))
            except requests.RequestException as exc:
                if is_permanent(exc):
                    raise _Final(cause_of(exc, read)) from None
                raise _Again(cause_of(exc, read)) from None
            status = response.status_code
            if status not in TRANSIENT_STATUS or (status == 500 and _mlflow_error_body(response)):
                return response
            asked = retry_after(response)
            cause = status_text(response)
            response.close()
            if asked is not None and (asked > settings.MAX_RETRY_AFTER or asked > deadline - time.monotonic()):
                raise self._too_long(what, cause, asked, limit)
            raise _Again(cause, asked)

        def wait(state: tenacity.RetryCallState) -> float:
            again = state.outcome.exception()  # always an _Again: nothing else is retried
            # the last attempt comes at the deadline
            return min(CALLS.wait(state.attempt_number, again.asked), max(0.0, deadline - time.monotonic()))

        def say_progress(state: tenacity.RetryCallState) -> None:
            now, pause = time.monotonic(), state.next_action.sleep if state.next_action else 0.0
            if now - started + pause >= settings.CALL_PROGRESS_AFTER and (
                    announced_at[0] is None or now - announced_at[0] >= PROGRESS_EVERY):
                announced_at[0] = now
                _say(f"Workspace {self.scope.workspace_name!r} at {self.scope.host} did not answer {what} "
                     f"({state.outcome.exception()}); still trying for up to {max(0.0, deadline - now):.0f} s more "
                     f"({settings.CONNECT_TIMEOUT_ENV} sets the limit, now {limit:g} s).")

        retrying = CALLS.retrying(retry=tenacity.retry_if_exception_type(_Again), wait=wait,
                                  stop=lambda state: deadline - time.monotonic() < 0.05, before_sleep=say_progress)
        try:
            return retrying(attempt)
        except _Final as exc:
            raise self._failure(what, str(exc), started, retrying.statistics["attempt_number"], limit,
                                final=True) from None
        except _Again as exc:
            raise self._failure(what, str(exc), started, retrying.statistics["attempt_number"], limit) from None

    def _send_checked(self, *args: Any) -> requests.Response:
        return raise_for_auth(self._send(*args))

    def _send(self, method: str, url: str, headers: dict[str, str] | None, timeout: tuple[float, float],
              kwargs: dict[str, Any]) -> requests.Response:
        from mlflow.tracking.request_header.registry import resolve_request_headers

        creds = auth.host_creds(self.scope, host=url)
        all_headers = dict(resolve_request_headers())
        all_headers.update(headers or {})
        all_headers["Authorization"] = f"Bearer {creds.token}"
        verify: Any = not creds.ignore_tls_verification
        if creds.server_cert_path and verify:
            verify = creds.server_cert_path
        body = kwargs.get("data")
        call_kwargs = {**kwargs, "data": body() if callable(body) else body}
        return self._session().request(method, url, headers=all_headers, timeout=timeout, verify=verify,
                                       cert=creds.client_cert_path, allow_redirects=False, **call_kwargs)

    def _failure(self, what: str, cause: str, started: float, attempts: int, limit: float,
                 final: bool = False) -> WorkspaceUnreachable:
        where = f"Workspace {self.scope.workspace_name!r} at {self.scope.host}"
        if final:
            return WorkspaceUnreachable(
                f"{where} could not be reached for {what}: {cause}. Retrying cannot fix this: check the "
                "host in the tracking URI or workspace config (and, for TLS, the certificate settings "
                "MLFLOW_TRACKING_SERVER_CERT_PATH / MLFLOW_TRACKING_INSECURE_TLS).")
        took = time.monotonic() - started
        return WorkspaceUnreachable(
            f"{where} could not be reached for {what}: {cause}. Gave up after {attempts} attempts in "
            f"{took:.0f} s ({settings.CONNECT_TIMEOUT_ENV}={limit:g} s sets this limit). Check that the "
            "workspace host is right and reachable from this machine, then try again.")

    def _too_long(self, what: str, cause: str, asked: float, limit: float) -> WorkspaceUnreachable:
        return WorkspaceUnreachable(
            f"Workspace {self.scope.workspace_name!r} at {self.scope.host} answered {what} with {cause} "
            f"and asked to retry after {asked:g} s. Calls you wait on honour Retry-After up to "
            f"{settings.MAX_RETRY_AFTER:g} s and within {settings.CONNECT_TIMEOUT_ENV} ({limit:g} s), so this "
            "call stops here: try again later.")


def _mlflow_read_timeout() -> float:
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

    return float(MLFLOW_HTTP_REQUEST_TIMEOUT.get())


def _say(message: str) -> None:
    print(f"mlflow-workspace: {message}", file=sys.stderr, flush=True)
