"""The one retry policy of every request to a workspace (tenacity), and its three bounds.

What is retried is the same everywhere (:mod:`.http_failures`): connection trouble and timeouts,
and the answers in :data:`~.http_failures.TRANSIENT_STATUS` (408/425/429/5xx; each path says
which of them it leaves to its caller). Between attempts: exponential backoff with jitter,
``first * 2 ** (n - 1) + uniform(0, jitter)`` seconds capped at ``max_wait``, or the server's
``Retry-After`` honoured up to :data:`~.settings.MAX_RETRY_AFTER` (60 s). How long to keep trying
depends on who waits, so there are three bounds of the one policy:

* :data:`SENDING` - the background sender (:mod:`.sender`): 0.5 s doubling, at most
  ``MLFLOW_WORKSPACE_RETRY_MAX_WAIT``, for up to ``MLFLOW_WORKSPACE_RETRY_TIMEOUT`` per outage;
* :data:`CALLS` - calls a user waits on (:mod:`~mlflow_workspace_plugin.store.session`): 0.25 s
  doubling, at most 4 s, within ``MLFLOW_WORKSPACE_CONNECT_TIMEOUT`` in total;
* :data:`TRANSFERS` - each artifact request (:mod:`~mlflow_workspace_plugin.store.transfer_http`):
  the first retry at once, then 0.4 s doubling, at most ``MLFLOW_WORKSPACE_RETRY_MAX_WAIT``; at
  most 4 retries (3 for an answer, 2 after the request was sent);
* :data:`FILE_ROUNDS` - the files of a transfer that still failed, again, in up to 3 rounds
  (:mod:`~mlflow_workspace_plugin.store.transfers`): 0.5 s, then 1 s between rounds.

The 401 rule (drop the rejected token, try once more with a fresh one) is not a retry of this
policy: :func:`~mlflow_workspace_plugin.auth.refreshing` wraps each single attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from mlflow_workspace_plugin.reliable import settings


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts and the ``tenacity.Retrying`` built from it (module doc)."""

    first: float  # seconds before the second attempt, doubling after that
    jitter: float  # up to this many seconds added at random (spreads retrying clients apart)
    max_wait: Callable[[], float]  # cap of one backoff (read when used: settings may change)
    max_attempts: int | None = None  # attempts in all (None: bounded by time only)
    immediate_first: bool = False  # the first retry without waiting (a dropped keep-alive connection)

    def backoff(self, attempt_number: int, cap: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt_number`` (1-based), at most ``cap``."""
        if self.immediate_first and attempt_number <= 1:
            return 0.0
        try:
            value = self.first * 2 ** (attempt_number - 1) + random.uniform(0, self.jitter)
        except OverflowError:
            value = float("inf")
        return max(0.0, min(value, self.max_wait() if cap is None else cap))

    def wait(self, attempt_number: int, retry_after: float | None = None, cap: float | None = None) -> float:
        """The backoff, or the server's ``Retry-After`` (up to :data:`settings.MAX_RETRY_AFTER`)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), settings.MAX_RETRY_AFTER)
        return self.backoff(attempt_number, cap)

    def retrying(self, *, retry: Any, wait: Callable[[tenacity.RetryCallState], float],
                 stop: Callable[[tenacity.RetryCallState], bool] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
                 retry_error_callback: Callable[[tenacity.RetryCallState], Any] | None = None) -> tenacity.Retrying:
        """A ``tenacity.Retrying`` of this policy; the last failure is re-raised (or handed to
        ``retry_error_callback``) when ``stop`` or :attr:`max_attempts` ends the retrying."""
        stops: list[Any] = [stop] if stop is not None else []
        if self.max_attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.max_attempts))
        return tenacity.Retrying(retry=retry, wait=wait, stop=tenacity.stop_any(*stops) if stops else
                                 tenacity.stop_never, sleep=sleep, before_sleep=before_sleep, reraise=True,
                                 retry_error_callback=retry_error_callback)


SENDING = RetryPolicy(first=0.5, jitter=0.5, max_wait=settings.retry_max_wait)
CALLS = RetryPolicy(first=0.25, jitter=0.05, max_wait=lambda: 4.0)
TRANSFERS = RetryPolicy(first=0.2, jitter=0.3, max_wait=settings.retry_max_wait, max_attempts=5,
                        immediate_first=True)
TRANSFER_ANSWER_RETRIES, TRANSFER_SENT_RETRIES = 3, 2  # of TRANSFERS' 4 retries
FILE_ROUNDS = RetryPolicy(first=0.5, jitter=0.0, max_wait=lambda: 60.0, max_attempts=3)
