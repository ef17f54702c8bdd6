"""The per-process, per-workspace logging pipeline: journal on the caller's thread, send on a worker.

``append`` journals entries (committed before it returns) and queues them; one worker thread
takes everything queued, plans ``log_batch`` requests and delivers them one at a time, in
logging order, deleting each entry from the journal once the server acknowledged it. Because
only one request is in flight and entries are never re-stamped, a retry after a lost
acknowledgement re-sends exactly the same points, which the server ignores.

``flush`` waits (bounded) for entries logged so far; after one second it prints progress, and
when time is up it says what stays in the journal and how to sync it. Rejected entries are
collected and raised by the caller at the next flush / end of run.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from mlflow_workspace_plugin import auth, shutdown
from mlflow_workspace_plugin.local_workspace import default_home
from mlflow_workspace_plugin.reliable import background, replay, settings
from mlflow_workspace_plugin.reliable.batching import plan
from mlflow_workspace_plugin.reliable.entries import Entry
from mlflow_workspace_plugin.reliable.journal import Journal, JournalUnwritable, workspace_dir
from mlflow_workspace_plugin.reliable.sender import AuthFailure, GiveUp, Sender
from mlflow_workspace_plugin.uri import WorkspaceScope

_logger = logging.getLogger(__name__)
WINDOW = 5000  # entries taken from the queue per planning round
JOURNAL_RETRY_S = 1.0  # a journal that could not be written is tried again after this long


class Ticket:
    """Completion of one asynchronous call (``RunOperations`` future): all its entries done."""

    def __init__(self, count: int) -> None:
        self.remaining, self.future = count, Future()
        self.error: MlflowException | None = None

    def settle(self, error: MlflowException | None, result: Any) -> None:
        self.error = self.error or error
        self.remaining -= 1
        if self.remaining == 0:
            if self.error is not None:
                self.future.set_exception(self.error)
            else:
                self.future.set_result(result)


class Pipeline:
    """Journal + queue + worker for one workspace in this process."""

    def __init__(self, scope: WorkspaceScope, tracking_uri: str, home: Path) -> None:
        self.scope, self.tracking_uri = scope, tracking_uri
        self.directory = workspace_dir(scope, home)
        self._cond = threading.Condition()
        self._queue: collections.deque[Entry] = collections.deque()
        self._outstanding: dict[int, Entry] = {}
        self._errors: list[tuple[str, MlflowException]] = []
        self._problem: Exception | None = None
        self._parked = False
        self._acks = 0  # deliveries completed (acknowledged or rejected) so far
        self._stalled_at: int | None = None  # value of _acks when a flush last ran out of time
        self._reported = -1  # pending count in the last "not yet acknowledged" message
        self._exit_deadline: float | None = None
        self._last_said = ""
        self._journal: Journal | None = None
        self._unwritable: JournalUnwritable | None = None  # why the journal cannot be written now
        self._unwritable_at = 0.0
        self._memory_seq = 0  # entries held only in memory get seqs -1, -2, ...
        self._stop = threading.Event()
        self._sender = Sender(scope, on_problem=self._set_problem)
        self._worker: threading.Thread | None = None
        self._replay_stop = threading.Event()
        self._replayer = replay.start_background(self.directory, scope, self._replay_stop)

    # ------------------------------------------------------------------ logging side
    def append(self, entries: Sequence[Entry], want_future: bool = False) -> Future | None:
        """Journal ``entries`` (durable on return) and queue them for sending. If the journal
        cannot be written (a full disk), wait for the workspace to acknowledge them instead
        (:meth:`_wait_acknowledged`): a call returns only once its values are safe somewhere."""
        ticket = Ticket(len(entries)) if want_future else None
        if not entries:
            if ticket is not None:
                ticket.future.set_result(None)
                return ticket.future
            return None
        with self._cond:
            durable = self._journal_append(entries)
            for entry in entries:
                entry.ticket = ticket
                self._outstanding[entry.seq] = entry
            self._queue.extend(entries)
            if self._parked:
                self._unpark()
            self._ensure_worker()
            self._cond.notify_all()
        if not durable:
            self._wait_acknowledged(entries)
        return ticket.future if ticket is not None else None

    def _journal_append(self, entries: Sequence[Entry]) -> bool:
        """Journal ``entries`` (called holding ``_cond``); False, with memory-only seqs given to
        them, while the journal cannot be written (tried again at most every
        :data:`JOURNAL_RETRY_S` seconds, so a full disk costs no file churn per call)."""
        if self._unwritable is not None and time.monotonic() - self._unwritable_at < JOURNAL_RETRY_S:
            self._memory_only(entries)
            return False
        try:
            if self._journal is None:
                self._journal = Journal.create(self.directory, self.tracking_uri)
            self._journal.append(entries)
        except JournalUnwritable as exc:
            if self._unwritable is None:
                _say(f"{exc}. Until it can, each log call waits for workspace {self.scope.workspace_name!r} to "
                     "acknowledge its values (about one request per call) instead of returning at once, so "
                     "nothing is lost. Free space there, or set MLFLOW_WORKSPACE_HOME to a folder with room.")
            self._unwritable, self._unwritable_at = exc, time.monotonic()
            self._memory_only(entries)
            return False
        if self._unwritable is not None:
            self._unwritable = None
            _say(f"the journal in {self.directory} can be written again; log calls return at once again.")
        return True

    def _memory_only(self, entries: Sequence[Entry]) -> None:
        """Negative seqs: keys of entries held in memory only (never rows of a journal)."""
        for entry in entries:
            self._memory_seq -= 1
            entry.seq = self._memory_seq

    def _wait_acknowledged(self, entries: Sequence[Entry]) -> None:
        """Wait (bounded by ``MLFLOW_WORKSPACE_CONNECT_TIMEOUT``, like any call a user waits on) for
        the workspace to acknowledge ``entries``, which only memory holds. If it does not, they
        are taken back out of the queue and the call fails with one error naming the folder."""
        limit = settings.connect_timeout()
        deadline = time.monotonic() + limit
        self._sender.hurry(True)
        try:
            with self._cond:
                while any(e.seq in self._outstanding for e in entries):
                    left = deadline - time.monotonic()
                    if left <= 0 or (isinstance(self._problem, AuthFailure) and not auth.can_refresh(self.scope)):
                        break
                    if self._parked:
                        self._unpark()
                    self._cond.wait(min(left, 0.1))
                missing = {e.seq for e in entries if e.seq in self._outstanding}
                if not missing:
                    return
                for seq in missing:
                    self._outstanding.pop(seq, None)
                self._queue = collections.deque(e for e in self._queue if e.seq not in missing)
                why = self._why()
                unwritable = self._unwritable
        finally:
            self._sender.hurry(False)
        raise MlflowException(
            f"Workspace {self.scope.workspace_name!r} did not acknowledge {len(missing)} logged values within "
            f"{limit:g} s{why}, and they cannot wait in the journal: {unwritable}. These values were not "
            f"recorded: log them again once the workspace answers ({settings.CONNECT_TIMEOUT_ENV} sets how long a "
            "call waits), or free space there / set MLFLOW_WORKSPACE_HOME to a folder with room.",
            error_code=TEMPORARILY_UNAVAILABLE)

    def pending(self, run_id: str | None = None) -> int:
        with self._cond:
            return sum(1 for e in self._outstanding.values() if run_id is None or e.run_id == run_id)

    def flush(self, run_id: str | None = None, timeout: float | None = None, release: bool = False,
              patient: bool = False, quiet: bool = False) -> int:
        """Wait until entries of ``run_id`` (or all) logged so far are done, at most ``timeout``
        seconds (default ``MLFLOW_WORKSPACE_FLUSH_TIMEOUT``). Returns how many are still pending.
        ``release``: if nothing at all is pending afterwards, close and delete the journal file
        (end of a run; the next log call starts a new one). ``patient``: an explicit flush, which
        waits the full limit even right after another flush ran out of time."""
        self._sender.hurry(True)
        try:
            return self._flush(run_id, timeout, release, patient, quiet)
        finally:
            self._sender.hurry(False)

    def _flush(self, run_id: str | None, timeout: float | None, release: bool, patient: bool,
               quiet: bool) -> int:
        started = time.monotonic()
        limit = settings.flush_timeout() if timeout is None else timeout
        deadline = started + limit
        if self._exit_deadline is not None:
            deadline = min(deadline, self._exit_deadline)
        # An earlier flush ran out of time and nothing got through since: the workspace is still
        # unreachable, so do not make the caller wait the whole limit again (bounded end of run).
        stalled = self._stalled_at is not None and self._stalled_at == self._acks
        full_deadline = deadline
        if stalled and not patient:
            deadline = min(deadline, started + 0.2)  # ...unless something gets through meanwhile
        with self._cond:
            targets = [s for s, e in self._outstanding.items() if run_id is None or e.run_id == run_id]
            if targets and self._parked:
                self._unpark()
            seen_acks = self._acks
        announced = False
        while targets:
            with self._cond:
                if self._acks != seen_acks:  # re-check only after deliveries
                    seen_acks = self._acks
                    targets = [s for s in targets if s in self._outstanding]
                    deadline = full_deadline
                now = time.monotonic()
                if not targets or now >= deadline or self._parked or isinstance(self._problem, AuthFailure):
                    break
                self._cond.wait(min(deadline - now, 0.1))
            if not announced and time.monotonic() - started > settings.PROGRESS_AFTER:
                announced = True
                _say(f"sending {len(targets)} logged values to workspace {self.scope.workspace_name!r} "
                     f"(waiting up to {limit:.0f} s; {settings.FLUSH_TIMEOUT_ENV} sets the limit)...")
        if targets:
            self._stalled_at = self._acks
        if targets and not quiet and (not stalled or patient or self._reported != len(targets)):
            self._reported = len(targets)
            _say(f"{len(targets)} logged values are not yet acknowledged by workspace "
                 f"{self.scope.workspace_name!r}{self._why()}. They are safe in the journal {self.directory}; "
                 "they are sent when the workspace answers again, by the next process that uses this "
                 "workspace, or now with `mlflow-workspace sync`.")
        elif announced:
            _say(f"all logged values reached workspace {self.scope.workspace_name!r} "
                 f"({time.monotonic() - started:.1f} s).")
        if release or self._exit_deadline is not None:
            self._close_if_drained()
        return len(targets)

    def take_errors(self, run_id: str | None = None) -> list[MlflowException]:
        """Rejections not reported yet (for ``run_id``, or all), forgetting them."""
        with self._cond:
            mine = [e for r, e in self._errors if run_id is None or r == run_id]
            self._errors = [(r, e) for r, e in self._errors if not (run_id is None or r == run_id)]
        return mine

    def auth_problem(self) -> MlflowException | None:
        problem = self._problem
        return problem.error if isinstance(problem, AuthFailure) else None

    def kick_replay(self) -> None:
        """Look for orphaned journals again (e.g. of a child process that just ended)."""
        if self._replayer is None or not self._replayer.is_alive():
            self._replayer = replay.start_background(self.directory, self.scope, self._replay_stop)

    def wait_for_replay(self, timeout: float) -> None:
        if self._replayer is not None:
            self._replayer.join(max(0.0, timeout))

    # ------------------------------------------------------------------ lifecycle
    def at_exit(self) -> None:
        """Bounded flush of everything (shared deadline for the rest of the exit), then tidy up;
        what is still not acknowledged is handed to the detached background sender."""
        self._exit_deadline = time.monotonic() + settings.flush_timeout()
        left = self.flush(quiet=True)
        self.wait_for_replay(self._exit_deadline - time.monotonic())
        replaying = self._replayer is not None and self._replayer.is_alive()
        self._close_if_drained()
        if left or replaying:
            self._hand_over(left)

    def _hand_over(self, left: int) -> None:
        """Start the background sender for what is left (see :mod:`.background`) and say so."""
        what = f"{left} logged values" if left else "Journaled values of earlier processes"
        head = (f"{what} are not yet acknowledged by workspace {self.scope.workspace_name!r}{self._why()}. "
                f"They are safe in the journal {self.directory}.")
        problem = self._problem
        if isinstance(problem, AuthFailure) and not auth.can_refresh(self.scope):
            _say(f"{head} Replace {auth.TOKEN_ENV} with a valid token for this workspace, then send them with "
                 "`mlflow-workspace sync`.")
            return
        if not settings.background_sender_enabled():
            _say(f"{head} They are sent by the next process that uses this workspace, or now with "
                 f"`mlflow-workspace sync` ({settings.BACKGROUND_SENDER_ENV} is off).")
            return
        try:
            env = auth.child_environment(self.tracking_uri)
        except MlflowException:
            env = {}  # the sender falls back to DefaultAzureCredential
        try:
            pid, log = background.start(self.scope, self.tracking_uri, env)
        except OSError as exc:
            _say(f"{head} Starting the background sender failed ({exc}): send them with `mlflow-workspace sync`.")
            return
        window = settings.retry_timeout()
        _say(f"{head} A background sender (pid {pid}) keeps sending them for up to {window / 60:g} min "
             f"({settings.RETRY_TIMEOUT_ENV}) and then exits; its log is {log}. Nothing else to do "
             "(`mlflow-workspace sync` sends them now, if you prefer).")

    def _unpark(self) -> None:
        """Let the worker try again (called holding ``_cond``)."""
        self._parked = False
        if isinstance(self._problem, AuthFailure):
            self._problem = None  # the credential may have been fixed: wait for a fresh answer
        self._cond.notify_all()

    def _say_once(self, message: str) -> None:
        """Print ``message`` unless it is the one printed last (a parked pipeline is woken by every
        log call; the user needs to read each distinct problem once)."""
        if message != self._last_said:
            self._last_said = message
            _say(message)

    def _why(self) -> str:
        return f" ({_describe(self._problem)})" if self._problem is not None else ""

    def close(self, timeout: float = 5.0) -> None:
        """Flush (bounded), stop the threads and close the journal (tests, explicit shutdown)."""
        self.flush(timeout=timeout)
        self._replay_stop.set()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in (self._worker, self._replayer):
            if thread is not None:
                thread.join(timeout)
        with self._cond:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        self._sender.close()

    def _close_if_drained(self) -> None:
        with self._cond:
            if self._journal is not None and not self._outstanding:
                self._journal.close()
                self._journal = None

    # ------------------------------------------------------------------ worker
    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="mlflow-workspace-sender", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while (not self._queue or self._parked) and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                window = [self._queue.popleft() for _ in range(min(WINDOW, len(self._queue)))]
            batches = plan(window)
            for index, batch in enumerate(batches):
                try:
                    self._sender.deliver(batch, self._done, self._stop)
                except GiveUp:
                    self._requeue([e for b in batches[index:] for e in b.entries])
                    break
                except Exception as exc:  # a bug must not lose data: keep it journaled
                    _logger.error("mlflow-workspace: sending failed unexpectedly: %s", exc)
                    self._requeue([e for b in batches[index:] for e in b.entries])
                    break

    def _requeue(self, entries: list[Entry]) -> None:
        with self._cond:
            left = [e for e in entries if e.seq in self._outstanding]
            self._queue.extendleft(reversed(left))
            if not self._stop.is_set():
                self._parked = True
                if not isinstance(self._problem, AuthFailure):  # that one already said what to do
                    self._say_once(f"stopped retrying workspace {self.scope.workspace_name!r} for now "
                                   f"({_describe(self._problem)}). The logged values stay in the journal until "
                                   "the next flush, the next log call or `mlflow-workspace sync`.")
            self._cond.notify_all()

    def _done(self, entries: list[Entry], error: MlflowException | None, result: Any) -> None:
        with self._cond:
            if self._journal is not None:
                self._journal.remove([e.seq for e in entries])
            for entry in entries:
                self._outstanding.pop(entry.seq, None)
                if entry.ticket is not None:
                    entry.ticket.settle(error, result)
            if error is not None:
                self._errors.append((entries[0].run_id, error))
            self._acks += 1
            self._cond.notify_all()

    def _set_problem(self, problem: Exception | None) -> None:
        if problem is not None:
            if isinstance(problem, AuthFailure) and not auth.can_refresh(self.scope):
                self._say_once(f"{_describe(problem)} Logged values stay in the journal {self.directory} until "
                               "then; send them with `mlflow-workspace sync` once the token is fixed.")
            elif self._problem is None:
                self._say_once(f"workspace {self.scope.workspace_name!r} did not take logged data "
                               f"({_describe(problem)}); retrying in the background. The data is safe in the "
                               "journal meanwhile.")
        self._problem = problem


# ---------------------------------------------------------------------- registry
_registry: dict[tuple[str, WorkspaceScope], Pipeline] = {}
_registry_lock = threading.Lock()
_atexit_registered = False


def pipeline_for(scope: WorkspaceScope, tracking_uri: str) -> Pipeline:
    """The pipeline of ``scope`` under the current ``$MLFLOW_WORKSPACE_HOME`` (created once)."""
    global _atexit_registered
    home = default_home()
    key = (str(home), scope)
    with _registry_lock:
        pipeline = _registry.get(key)
        if pipeline is None:
            pipeline = _registry[key] = Pipeline(scope, tracking_uri, home)
            if not _atexit_registered:
                shutdown.at_exit("journal", _at_exit)  # after the runs have ended (their last calls)
                _atexit_registered = True
        return pipeline


def close_all(timeout: float = 5.0) -> None:
    """Close every pipeline of this process (tests; the next use creates fresh ones)."""
    with _registry_lock:
        pipelines = list(_registry.values())
        _registry.clear()
    for pipeline in pipelines:
        pipeline.close(timeout)


def _at_exit() -> None:
    for pipeline in list(_registry.values()):
        try:
            pipeline.at_exit()
        except Exception as exc:  # pragma: no cover - never fail the interpreter's exit
            _logger.warning("mlflow-workspace: flushing at exit failed: %s", exc)


def _after_fork_in_child() -> None:
    """A forked child starts with no pipelines; it drops its copies of the parent's journal lock
    descriptors (without unlocking: the parent still holds the locks)."""
    global _registry
    for pipeline in _registry.values():
        if pipeline._journal is not None:
            pipeline._journal.forget_lock()
    _registry = {}


os.register_at_fork(after_in_child=_after_fork_in_child)


def _describe(problem: Exception | None) -> str:
    """The problem in whole sentences (never cut at a fixed length)."""
    if problem is None:
        return "no answer yet"
    lines = str(problem).strip().splitlines()
    return lines[0].rstrip() if lines else type(problem).__name__


def _say(message: str) -> None:
    print(f"mlflow-workspace: {message}", file=sys.stderr, flush=True)
