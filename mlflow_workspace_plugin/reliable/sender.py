"""Send batches to the workspace: retries, token refresh, and isolating rejected entries.

Retry policy (one layer: :data:`.retry.SENDING`, the one policy): tenacity retries a transient
failure (connection trouble, 408/425/429/5xx) in the background with exponential backoff plus jitter (0.5 s doubling,
capped at ``MLFLOW_WORKSPACE_RETRY_MAX_WAIT``, or at 1 s while someone waits in a flush - see
:meth:`Sender.hurry` - or the server's ``Retry-After`` up to :data:`settings.MAX_RETRY_AFTER`) for up
to ``MLFLOW_WORKSPACE_RETRY_TIMEOUT`` (default 1 h); the data stays journaled all along. A flush
starting wakes a sleeping retry at once, so delivery resumes within about a second of the
workspace coming back. Each request is bounded (connect 5 s, read ``MLFLOW_WORKSPACE_REQUEST_TIMEOUT``,
and never past :attr:`Sender.deadline`).

401: the rejected token is dropped and the request retried once with a fresh one
(:func:`~mlflow_workspace_plugin.auth.refreshing`). 403, or 401 again: :class:`AuthFailure` - data
kept, retried slowly when the credential can change (azure-identity), not retried for a static
``MLFLOW_TRACKING_TOKEN`` (it cannot heal: the user must replace it), reported at flush.
Other 4xx (validation, e.g. INVALID_PARAMETER_VALUE): the batch is split in halves until the
offending entries are isolated; those are reported with the server's message and dropped, the
rest is delivered. A 500 carrying an MLflow error body in eight attempts in a row (with backoff
in between) counts as a rejection, so a poison entry cannot block
the queue for an hour while a briefly locked server database is still ridden out.

Re-sending is safe: every entry goes out with the values journaled at logging time (metric
timestamps included), and the MLflow server ignores a metric point whose (key, timestamp, step,
value) it already has, an identical param, and an identical tag.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import tenacity
from mlflow.entities import RunInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, ErrorCode
from mlflow.protos.service_pb2 import LogBatch, UpdateRun
from mlflow.utils.proto_json_utils import message_to_json, parse_dict
from requests.adapters import HTTPAdapter

from mlflow_workspace_plugin import auth, mlflow_compat
from mlflow_workspace_plugin.reliable import settings
from mlflow_workspace_plugin.reliable.batching import Batch, split
from mlflow_workspace_plugin.reliable.entries import METRIC, PARAM, TAG, Entry
from mlflow_workspace_plugin.reliable.http_failures import (
    TRANSIENT_STATUS,
    cause_of,
    raise_for_auth,
    retry_after,
    status_text,
)
from mlflow_workspace_plugin.reliable.retry import SENDING
from mlflow_workspace_plugin.uri import WorkspaceScope

_logger = logging.getLogger(__name__)
POISON_500_ATTEMPTS = 8
Done = Callable[[list[Entry], "MlflowException | None", Any], None]


class Transient(Exception):
    """Worth retrying: connection trouble, throttling, 5xx."""

    def __init__(self, message: str, retry_after: float | None = None, server_error: bool = False) -> None:
        super().__init__(message)
        self.retry_after, self.server_error = retry_after, server_error


class AuthFailure(Exception):
    """The workspace rejected the credentials (after one refresh) or none could be obtained."""

    def __init__(self, error: MlflowException) -> None:
        super().__init__(error.message)
        self.error = error


class Rejected(Exception):
    """The server refused the request for good (validation); ``error`` carries its message."""

    def __init__(self, error: MlflowException) -> None:
        super().__init__(error.message)
        self.error = error


class GiveUp(Exception):
    """Stopped retrying (time limit reached, credential rejected, or shutting down); the entries
    stay journaled. ``cause``: the last failure, if any."""

    def __init__(self, message: str, cause: Exception | None = None) -> None:
        super().__init__(message)
        self.cause = cause


CONNECT_TIMEOUT = 5.0
HURRIED_MAX_WAIT = 1.0  # backoff cap while a flush waits for the data


def make_session() -> requests.Session:
    """A keep-alive session without retries of its own: tenacity (:data:`.retry.SENDING`, see the
    module doc) is the sender's only retry layer, so a flush can wake it."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=2)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Sender:
    """Delivers :class:`Batch` es for one workspace (one thread at a time)."""

    def __init__(self, scope: WorkspaceScope,
                 on_problem: Callable[[Exception | None], None] | None = None) -> None:
        self.scope = scope
        self.deadline: float | None = None  # time.monotonic() after which nothing is sent
        self._session = make_session()
        self._on_problem = on_problem or (lambda exc: None)
        self._wake = threading.Event()
        self._hurried = 0
        self._hurry_lock = threading.Lock()
        self._last_problem: Exception | None = None
        self._batch_endpoint = mlflow_compat.tracking_endpoint(LogBatch)[0]
        self._update_endpoint = mlflow_compat.tracking_endpoint(UpdateRun)[0]

    # ------------------------------------------------------------------ one request
    def _post(self, endpoint: str, body: str) -> requests.Response:
        try:
            return auth.refreshing(self.scope, lambda: raise_for_auth(self._post_once(endpoint, body)))
        except MlflowException as exc:  # rejected after one refresh, or no token could be obtained
            raise AuthFailure(exc) from None
        except requests.RequestException as exc:
            raise Transient(cause_of(exc, settings.request_timeout())) from None

    def _post_once(self, endpoint: str, body: str) -> requests.Response:
        from mlflow.tracking.request_header.registry import resolve_request_headers

        creds = auth.host_creds(self.scope)
        headers = dict(resolve_request_headers())
        headers.update({"Content-Type": "application/json", "Authorization": f"Bearer {creds.token}"})
        verify: Any = not creds.ignore_tls_verification
        if creds.server_cert_path and verify:
            verify = creds.server_cert_path
        timeout = (CONNECT_TIMEOUT, settings.request_timeout())
        if self.deadline is not None:
            left = max(0.1, self.deadline - time.monotonic())
            timeout = (min(timeout[0], left), min(timeout[1], left))
        response = self._session.post(creds.host.rstrip("/") + endpoint, data=body.encode(), headers=headers,
                                      timeout=timeout, verify=verify,
                                      cert=creds.client_cert_path, allow_redirects=False)
        return response

    def _check(self, response: requests.Response) -> dict:
        status = response.status_code
        if status == 200:
            try:
                return response.json() if response.content else {}
            except ValueError:
                return {}
        if status in (401, 403):
            raise AuthFailure(auth.rejected(self.scope, status))
        error = _error_of(response)
        if status in TRANSIENT_STATUS:
            raise Transient(f"{status_text(response)}: {_first_line(error.message)}", retry_after(response),
                            server_error=status == 500 and _is_mlflow_error(response))
        raise Rejected(error)

    def send(self, batch: Batch) -> Any:
        """One attempt for ``batch``; returns the ``RunInfo`` of a run update, else None."""
        if batch.is_update:
            p = batch.entries[0].payload
            body = message_to_json(UpdateRun(run_id=batch.run_id, run_uuid=batch.run_id, status=p["status"],
                                             end_time=p["end_time"], run_name=p["run_name"]))
            reply = self._check(self._post(self._update_endpoint, body))
            proto = UpdateRun.Response()
            parse_dict(reply, proto)
            return RunInfo.from_proto(proto.run_info) if proto.HasField("run_info") else None
        metrics = [e.to_metric().to_proto() for e in batch.entries if e.kind == METRIC]
        params = [e.to_param().to_proto() for e in batch.entries if e.kind == PARAM]
        tags = [e.to_tag().to_proto() for e in batch.entries if e.kind == TAG]
        body = message_to_json(LogBatch(run_id=batch.run_id, metrics=metrics, params=params, tags=tags))
        self._check(self._post(self._batch_endpoint, body))
        return None

    # ------------------------------------------------------------------ with retries
    def deliver(self, batch: Batch, on_done: Done, stop: threading.Event) -> None:
        """Send ``batch`` until acknowledged, calling ``on_done`` for acked and rejected parts in
        logging order. Raises :class:`GiveUp` (entries not yet done stay journaled)."""
        server_errors = [0]

        def attempt() -> Any:
            try:
                result = self.send(batch)
            except Transient as exc:
                server_errors[0] = server_errors[0] + 1 if exc.server_error else 0
                if server_errors[0] >= POISON_500_ATTEMPTS:
                    raise Rejected(MlflowException(str(exc), INTERNAL_ERROR)) from None
                raise
            self._on_problem(None)
            return result

        retryable: tuple[type[Exception], ...] = (Transient, AuthFailure) if auth.can_refresh(self.scope) else (
            Transient,)
        retrying = SENDING.retrying(
            retry=tenacity.retry_if_exception_type(retryable),
            wait=self._wait, stop=tenacity.stop_any(tenacity.stop_after_delay(settings.retry_timeout()),
                                                    lambda state: stop.is_set() or self._past_deadline()),
            sleep=lambda seconds: self._sleep(stop, seconds), before_sleep=self._report)
        try:
            result = retrying(attempt)
        except Rejected as exc:
            if len(batch.entries) > 1:
                for half in split(batch):
                    self.deliver(half, on_done, stop)
                return
            entry = batch.entries[0]
            error = _rejection(entry, exc.error)
            _logger.warning("mlflow-workspace: %s", error.message)
            on_done(batch.entries, error, None)
            return
        except (Transient, AuthFailure) as exc:
            self._on_problem(exc)
            raise GiveUp(str(exc), exc) from None
        on_done(batch.entries, None, result)

    def hurry(self, waiting: bool) -> None:
        """Someone waits for the data (a flush starts/ends): while anyone waits, back off at most
        :data:`HURRIED_MAX_WAIT`, and a retry sleeping now tries again at once."""
        with self._hurry_lock:
            self._hurried += 1 if waiting else -1
        if waiting:
            self._wake.set()

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        cap = HURRIED_MAX_WAIT if self._hurried > 0 else settings.retry_max_wait()
        if isinstance(exc, AuthFailure):
            cap = max(cap, 30.0)  # a rejected credential will not heal quickly
        return SENDING.wait(state.attempt_number, exc.retry_after if isinstance(exc, Transient) else None, cap)

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        """Sleep between attempts; a flush starting (:meth:`hurry`) ends the sleep early."""
        self._wake.clear()
        end = time.monotonic() + seconds
        if self.deadline is not None:
            end = min(end, self.deadline)
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, 0.2)):
                break
        if stop.is_set() or self._past_deadline():
            last = f": {self._last_problem}" if self._last_problem is not None else ""
            raise GiveUp(f"stopped retrying{last}", self._last_problem)

    def _report(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._last_problem = exc
        self._on_problem(exc)
        _logger.debug("mlflow-workspace: attempt %d for workspace %s failed (%s); retrying in %.1fs",
                      state.attempt_number, self.scope.workspace_name, exc,
                      state.next_action.sleep if state.next_action else 0.0)

    def close(self) -> None:
        self._session.close()


# ---------------------------------------------------------------------- helpers

def _is_mlflow_error(response: requests.Response) -> bool:
    try:
        return isinstance(response.json(), dict) and "error_code" in response.json()
    except ValueError:
        return False


def _error_of(response: requests.Response) -> MlflowException:
    """The server's own message (MLflow error JSON), else the status and the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        code = body.get("error_code", "INTERNAL_ERROR")
        try:
            ErrorCode.Value(code)
        except ValueError:
            code = "INTERNAL_ERROR"
        return MlflowException(str(body["message"]), error_code=ErrorCode.Value(code))
    text = (response.text or "").strip()[:500]
    return MlflowException(f"HTTP {response.status_code} {response.reason}: {text}",
                           error_code=INVALID_PARAMETER_VALUE)


def _rejection(entry: Entry, error: MlflowException) -> MlflowException:
    what = {"metric": "metric", "param": "param", "tag": "tag"}.get(entry.kind, "run update")
    label = f"{what} {entry.key!r}" if entry.key else what
    return MlflowException(f"The workspace rejected {label} of run {entry.run_id}: {error.message}",
                           error_code=ErrorCode.Value(error.error_code))


def _first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""
