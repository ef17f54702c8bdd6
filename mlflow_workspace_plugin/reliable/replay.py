"""Replay journals left behind by processes that ended before the server acknowledged everything.

A journal is replayed only while its lock is held (so never one of a live process, and never by
two replayers at once). Entries go out in their original order with their original values, so a
point the server already stored (its acknowledgement was lost) is ignored by the server, not
duplicated. Acknowledged and finally-rejected entries are deleted as they complete; an empty
journal's files are removed.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.reliable.batching import plan
from mlflow_workspace_plugin.reliable.entries import Entry
from mlflow_workspace_plugin.reliable.journal import Journal, UnusableJournal, journal_files
from mlflow_workspace_plugin.reliable.sender import AuthFailure, GiveUp, Sender
from mlflow_workspace_plugin.uri import WorkspaceScope, parse_workspace_uri

_logger = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    """What one replay pass did."""

    journals: int = 0  # orphaned journals opened
    sent: int = 0  # entries acknowledged by the server
    rejected: list[MlflowException] = field(default_factory=list)
    remaining: int = 0  # entries still journaled (server unreachable, or stopped)
    skipped: int = 0  # journals of processes still running (theirs to send)
    problems: list[str] = field(default_factory=list)
    auth_error: MlflowException | None = None  # the workspace rejected the credentials
    quarantined: list[str] = field(default_factory=list)  # one message per file moved aside

    def add(self, other: ReplayReport) -> None:
        self.journals += other.journals
        self.sent += other.sent
        self.rejected.extend(other.rejected)
        self.remaining += other.remaining
        self.skipped += other.skipped
        self.problems.extend(other.problems)
        self.auth_error = self.auth_error or other.auth_error
        self.quarantined.extend(other.quarantined)


def replay_journal(journal: Journal, sender: Sender, stop: threading.Event) -> ReplayReport:
    """Send everything in one (locked) orphan journal; closes it (deleting it when empty)."""
    report = ReplayReport(journals=1)

    def done(entries: list[Entry], error: MlflowException | None, _result: Any) -> None:
        journal.remove([e.seq for e in entries])
        if error is None:
            report.sent += len(entries)
        else:
            report.rejected.append(error)

    try:
        for chunk in journal.iter_all():
            for batch in plan(chunk):
                sender.deliver(batch, done, stop)
    except GiveUp as exc:
        if isinstance(exc.cause, AuthFailure):
            report.auth_error = exc.cause.error
        else:
            report.problems.append(f"{journal.path.name}: {exc}")
    finally:
        report.remaining = journal.count()
        _report_damage(journal, report)
        journal.close()
    return report


def _report_damage(journal: Journal, report: ReplayReport) -> None:
    """One message for the damaged rows set aside from ``journal`` (and one if they could not be)."""
    if journal.damaged:
        seq, why = journal.damaged[0]
        count = len(journal.damaged)
        rows = "1 row" if count == 1 else f"{count} rows"
        first = "" if count == 1 else "the first: "
        report.quarantined.append(
            f"{rows} of journal {journal.path.name} {'is' if count == 1 else 'are'} damaged and cannot be sent "
            f"({first}row {seq}, {why}); moved {'it' if count == 1 else 'them'} to {journal.damage_file} so the rest "
            "can be sent. Delete that file once you no longer need it.")
    if journal.damage_problem:
        report.problems.append(f"{journal.path.name}: damaged rows could not be set aside: {journal.damage_problem}")


def replay_directory(directory: Path, stop: threading.Event, scope: WorkspaceScope | None = None,
                     deadline: float | None = None) -> ReplayReport:
    """Replay every orphaned journal in one workspace folder (skipping live processes' ones),
    sending nothing after ``deadline`` (``time.monotonic()``). Unusable journal files are moved to
    ``quarantine/``; a rejected credential stops the whole folder (one message)."""
    report = ReplayReport()
    sender: Sender | None = None
    try:
        for path in journal_files(directory):
            if stop.is_set() or report.auth_error is not None or (
                    deadline is not None and time.monotonic() >= deadline):
                report.remaining += _count_quietly(path)
                continue
            try:
                journal = Journal.open_orphan(path)
            except UnusableJournal as bad:
                report.quarantined.append(_quarantine(bad))
                continue
            if journal is None:
                report.skipped += path.exists()
                continue
            if sender is None:
                try:
                    target = scope or parse_workspace_uri(journal.meta("tracking_uri") or "")
                except MlflowException as exc:
                    journal.close()
                    report.problems.append(f"{path.name}: {exc.message}")
                    continue
                sender = Sender(target)
                sender.deadline = deadline
            report.add(replay_journal(journal, sender, stop))
    finally:
        if sender is not None:
            sender.close()
    if report.auth_error is not None:
        report.problems.insert(0, f"{report.auth_error.message} The data stays in {directory}.")
    if report.sent or report.rejected:
        _logger.info("mlflow-workspace: replayed %d journaled entries (%d rejected) from %d journal(s)",
                     report.sent, len(report.rejected), report.journals)
    for error in report.rejected:
        _logger.warning("mlflow-workspace: while replaying: %s", error.message)
    return report


def _count_quietly(path: Path) -> int:
    """Entries in a journal not attempted (time is up); 0 if it cannot be read right now."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    except sqlite3.Error:
        return 0


def _quarantine(bad: UnusableJournal) -> str:
    """Move an unusable journal file aside; the one message that says where and why."""
    try:
        target = bad.quarantine()
    except OSError as exc:
        bad.lock.release()
        return (f"journal {bad.path} is unusable ({bad.why}) and could not be moved aside ({exc}); "
                "the other journals are sent anyway.")
    return (f"journal {bad.path.name} is unusable ({bad.why}); moved it to {target} so the other journals "
            "can be sent. Nothing in it can be sent; delete it once you no longer need it.")


def start_background(directory: Path, scope: WorkspaceScope, stop: threading.Event) -> threading.Thread | None:
    """Replay orphans of ``directory`` in a daemon thread (None if there is nothing to look at)."""
    if not journal_files(directory):
        return None

    def run() -> None:
        try:
            report = replay_directory(directory, stop, scope)
        except Exception as exc:  # never disturb the user's process
            _logger.warning("mlflow-workspace: journal replay failed: %s", exc)
            return
        for message in report.quarantined:
            print(f"mlflow-workspace: {message}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name="mlflow-workspace-replay", daemon=True)
    thread.start()
    return thread


def sync(home: Path, tracking_uri: str | None = None, timeout: float = 60.0) -> dict[Path, ReplayReport]:
    """Replay orphaned journals of one workspace (``tracking_uri``) or of all under ``home``,
    giving up (entries stay journaled) after ``timeout`` seconds of trying."""
    from mlflow_workspace_plugin.reliable.journal import JOURNAL_DIR, workspace_dir

    if tracking_uri:
        scope: WorkspaceScope | None = parse_workspace_uri(tracking_uri)
        directories = [workspace_dir(scope, home)]
    else:
        scope = None
        root = home / JOURNAL_DIR
        directories = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    stop = threading.Event()
    deadline = time.monotonic() + timeout
    timer = threading.Timer(timeout, stop.set)  # wakes a retry that is sleeping
    timer.daemon = True
    timer.start()
    try:
        return {d: replay_directory(d, stop, scope, deadline) for d in directories if journal_files(d)}
    finally:
        timer.cancel()
