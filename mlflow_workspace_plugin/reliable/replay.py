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
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.reliable.batching import plan
from mlflow_workspace_plugin.reliable.entries import Entry
from mlflow_workspace_plugin.reliable.journal import Journal, journal_files
from mlflow_workspace_plugin.reliable.sender import GiveUp, Sender
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

    def add(self, other: ReplayReport) -> None:
        self.journals += other.journals
        self.sent += other.sent
        self.rejected.extend(other.rejected)
        self.remaining += other.remaining
        self.skipped += other.skipped
        self.problems.extend(other.problems)


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
        report.problems.append(f"{journal.path.name}: {exc}")
    finally:
        report.remaining = journal.count()
        journal.close()
    return report


def replay_directory(directory: Path, stop: threading.Event, scope: WorkspaceScope | None = None) -> ReplayReport:
    """Replay every orphaned journal in one workspace folder (skipping live processes' ones)."""
    report = ReplayReport()
    sender: Sender | None = None
    try:
        for path in journal_files(directory):
            if stop.is_set():
                break
            try:
                journal = Journal.open_orphan(path)
            except sqlite3.Error as exc:
                report.problems.append(f"{path.name}: unreadable journal ({exc})")
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
            report.add(replay_journal(journal, sender, stop))
    finally:
        if sender is not None:
            sender.close()
    if report.sent or report.rejected:
        _logger.info("mlflow-workspace: replayed %d journaled entries (%d rejected) from %d journal(s)",
                     report.sent, len(report.rejected), report.journals)
    for error in report.rejected:
        _logger.warning("mlflow-workspace: while replaying: %s", error.message)
    return report


def start_background(directory: Path, scope: WorkspaceScope, stop: threading.Event) -> threading.Thread | None:
    """Replay orphans of ``directory`` in a daemon thread (None if there is nothing to look at)."""
    if not journal_files(directory):
        return None

    def run() -> None:
        try:
            replay_directory(directory, stop, scope)
        except Exception as exc:  # never disturb the user's process
            _logger.warning("mlflow-workspace: journal replay failed: %s", exc)

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
    timer = threading.Timer(timeout, stop.set)
    timer.daemon = True
    timer.start()
    try:
        return {d: replay_directory(d, stop, scope) for d in directories if journal_files(d)}
    finally:
        timer.cancel()
