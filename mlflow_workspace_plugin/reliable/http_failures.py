"""What went wrong with one HTTP request, in words: shared by the background sender and by the
calls a user waits on (:mod:`mlflow_workspace_plugin.store.session`).

* :func:`cause_of` - "connection refused", "the host name could not be resolved (DNS)", "TLS
  handshake failed: ...", "no answer within 60 s", ... for a ``requests`` exception;
* :func:`not_sent` - failures before the request left (always safe to repeat);
* :func:`is_permanent` - failures that retrying cannot fix (TLS errors, an unknown host name);
* :func:`retry_after` - the ``Retry-After`` of an answer, in seconds;
* :data:`TRANSIENT_STATUS` - answers worth retrying;
* :func:`raise_for_auth` - a 401/403 answer as the ``HTTPError`` that
  :func:`~mlflow_workspace_plugin.auth.refreshing` understands.

Messages never include request headers (the token travels there), only exception texts of the
connection layer, redacted with :func:`~mlflow_workspace_plugin.uri.redact`.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from time import time

import requests

from mlflow_workspace_plugin.uri import redact

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (``reason``, ``args[0]``, ``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "reason", None), current.__cause__, current.__context__,
                     *(a for a in current.args if isinstance(a, BaseException))])


def _dns_failure(exc: BaseException) -> socket.gaierror | None:
    for item in _chain(exc):
        if isinstance(item, socket.gaierror):
            return item
        if type(item).__name__ == "NameResolutionError":
            inner = next((i for i in _chain(item) if isinstance(i, socket.gaierror)), None)
            return inner or socket.gaierror(socket.EAI_NONAME, str(item))
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return redact(lines[0]) if lines else type(exc).__name__


def cause_of(exc: BaseException, read_timeout: float | None = None) -> str:
    """A short, whole-words description of why a request failed."""
    if any(isinstance(e, (ssl.SSLError, requests.exceptions.SSLError)) for e in _chain(exc)):
        reason = next((e for e in _chain(exc) if isinstance(e, ssl.SSLError)), exc)
        return f"the TLS handshake failed ({_first_line(reason)})"
    dns = _dns_failure(exc)
    if dns is not None:
        return "the host name could not be resolved (DNS lookup failed)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within {read_timeout:g} s" if read_timeout else "no answer in time"
    for item in _chain(exc):
        if isinstance(item, ConnectionRefusedError) or getattr(item, "errno", None) == errno.ECONNREFUSED:
            return "connection refused (nothing is listening there)"
    for item in _chain(exc):
        if isinstance(item, (ConnectionResetError, BrokenPipeError)) or type(item).__name__ in (
                "RemoteDisconnected", "ProtocolError", "IncompleteRead"):
            return "the connection was closed before an answer came"
    if "refused" in str(exc).lower():
        return "connection refused (nothing is listening there)"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def not_sent(exc: BaseException) -> bool:
    """True if the request never left: connecting failed or timed out (so repeating it is safe
    for any method); False if it may have reached the server (a read timeout, a dropped answer)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    return any(isinstance(item, ConnectionRefusedError) or getattr(item, "errno", None) == errno.ECONNREFUSED
               or type(item).__name__ in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError")
               for item in _chain(exc))


def is_permanent(exc: BaseException) -> bool:
    """True for failures retrying cannot fix: TLS errors and a host name that does not exist."""
    if any(isinstance(e, (ssl.SSLError, requests.exceptions.SSLError)) for e in _chain(exc)):
        return True
    dns = _dns_failure(exc)
    return dns is not None and dns.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked to wait (``Retry-After`` in seconds or as an HTTP date), or None."""
    raw = (response.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def raise_for_auth(response: requests.Response) -> requests.Response:
    """Raise ``HTTPError`` (carrying the response) for 401/403; else return ``response``."""
    if response.status_code in (401, 403):
        raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
    return response


def status_text(response: requests.Response) -> str:
    """``HTTP 429 Too Many Requests``."""
    reason = (response.reason or "").strip()
    return f"HTTP {response.status_code} {reason}".rstrip()
