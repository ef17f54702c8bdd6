"""The durable spill: one SQLite (WAL) journal file per process, per workspace.

Layout: ``$MLFLOW_WORKSPACE_HOME/journal/<workspace hash>/<host>-<pid>-<random>.db`` plus a
``.lock`` file held (``flock``) for the owning process's lifetime. The lock is taken *before*
the ``.db`` file exists, so a journal whose lock can be taken belongs to a dead process
("orphan") and may be replayed by whoever holds its lock.

Schema (``entries``): ``seq`` INTEGER PRIMARY KEY AUTOINCREMENT (logging order), ``run_id``,
``kind`` (metric / param / tag / run_update), ``key``, ``payload`` (JSON: value, timestamp, step,
...), ``created``. ``meta`` holds the tracking URI (never a token) and the format version.
A row is deleted once the server acknowledged it (or rejected it for good).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlflow_workspace_plugin.file_lock import ProcessLock
from mlflow_workspace_plugin.local_workspace import default_home
from mlflow_workspace_plugin.reliable import settings
from mlflow_workspace_plugin.reliable.entries import BadEntry, Entry, decode
from mlflow_workspace_plugin.uri import WorkspaceScope

FORMAT_VERSION = "1"
JOURNAL_DIR = "journal"
QUARANTINE_DIR = "quarantine"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def workspace_dir(scope: WorkspaceScope, home: Path | None = None) -> Path:
    """``<home>/journal/<hash of host + workspace identity>``."""
    identity = "|".join((scope.host, scope.subscription_id, scope.resource_group, scope.workspace_name))
    digest = hashlib.sha256(identity.lower().encode()).hexdigest()[:16]
    return (home or default_home()) / JOURNAL_DIR / digest


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.db")) if directory.is_dir() else []


class Journal:
    """One journal file; thread-safe (one connection, one lock)."""

    def __init__(self, path: Path, lock: ProcessLock, conn: sqlite3.Connection) -> None:
        self.path, self._lock, self._conn = path, lock, conn
        self._mutex = threading.Lock()
        self.damaged: list[tuple[int, str]] = []  # rows set aside: (seq, why)
        self.damage_file: Path | None = None
        self.damage_problem: str | None = None
        self._unremoved: list[int] = []  # acknowledged rows a full disk kept us from deleting

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, directory: Path, tracking_uri: str) -> Journal:
        """A new journal owned by this process (lock first, then the database file).
        :class:`JournalUnwritable` if the folder cannot take it (nothing is left behind then)."""
        stem = f"{_safe(socket.gethostname())}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path = directory / f"{stem}.db"
        lock: ProcessLock | None = None
        conn: sqlite3.Connection | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock = ProcessLock.try_acquire(directory / f"{stem}.lock")
            if lock is None:  # pragma: no cover - random name collision
                raise RuntimeError(f"journal lock {stem} is held by another process")
            conn = _connect(path, create=True)
            with conn:
                conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                 [("tracking_uri", tracking_uri), ("format", FORMAT_VERSION),
                                  ("pid", str(os.getpid())), ("created", str(time.time()))])
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            _unlink_database(path)
            if lock is not None:
                lock.release(delete=True)
            raise JournalUnwritable(directory, exc) from None
        return cls(path, lock, conn)

    @classmethod
    def open_orphan(cls, path: Path) -> Journal | None:
        """Lock and open a journal whose process is gone; None if it is alive or already gone."""
        lock_path = path.with_suffix(".lock")
        lock = ProcessLock.try_acquire(lock_path)
        if lock is None:
            return None
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            lock.release(delete=True)
            return None
        try:
            conn = _connect(path, create=False)
            try:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                uri = conn.execute("SELECT value FROM meta WHERE key = 'tracking_uri'").fetchone() if (
                    "meta" in tables) else None
            except sqlite3.Error:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise UnusableJournal(path, lock, _why_unusable(size, exc)) from None
        if not {"meta", "entries"} <= tables or not uri:
            conn.close()
            why = ("an empty file: its process ended before it wrote anything" if size == 0 else
                   "a SQLite file without the journal's tables: its process ended while creating it")
            raise UnusableJournal(path, lock, why)
        return cls(path, lock, conn)

    # ------------------------------------------------------------------ data
    def append(self, entries: Sequence[Entry]) -> None:
        """Insert and commit (durable before returning); sets each entry's ``seq``.
        :class:`JournalUnwritable` (nothing of ``entries`` stored) if the file cannot grow."""
        now = time.time()
        with self._mutex:
            try:
                self._write("INSERT INTO entries(run_id, kind, key, payload, created) VALUES (?,?,?,?,?)",
                            [(e.run_id, e.kind, e.key, e.encoded(), now) for e in entries], entries)
            except (sqlite3.Error, OSError) as exc:
                raise JournalUnwritable(self.path.parent, exc) from None

    def remove(self, seqs: Sequence[int]) -> None:
        """Forget acknowledged (or finally rejected) entries. If the file cannot take the delete
        (a full disk: WAL mode writes a delete too), the rows are forgotten later (the next remove
        or close); until then a replay would re-send them, which the server ignores."""
        with self._mutex:
            todo = self._unremoved + [s for s in seqs if s > 0]
            if not todo:
                return
            try:
                self._write("DELETE FROM entries WHERE seq = ?", [(s,) for s in todo])
            except (sqlite3.Error, OSError):
                self._unremoved = todo
            else:
                self._unremoved = []

    def _write(self, sql: str, rows: Sequence[tuple], entries: Sequence[Entry] = ()) -> None:
        """One transaction of ``sql`` over ``rows`` (sets ``entries``' seqs from the inserted rows).
        On failure nothing is kept; SQLite may have rolled back by itself (SQLITE_FULL), so the
        original error is the one raised, never "cannot rollback"."""
        cur = self._conn.cursor()
        cur.execute("BEGIN")
        try:
            seqs = []
            for row in rows:
                cur.execute(sql, row)
                seqs.append(cur.lastrowid)
            cur.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                try:
                    cur.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
        for entry, seq in zip(entries, seqs, strict=False):  # no entries for a delete
            entry.seq = seq

    def read(self, after: int = 0, limit: int = 5000) -> list[Entry]:
        """Entries after seq ``after`` in logging order; damaged rows are set aside (see
        :meth:`set_aside`) instead of stopping the read."""
        return self._read(after, limit)[0]

    def _read(self, after: int, limit: int) -> tuple[list[Entry], int | None]:
        """(entries, seq of the last row looked at, None when there was none)."""
        with self._mutex:
            rows = self._conn.execute(
                "SELECT seq, run_id, kind, key, payload FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        good: list[Entry] = []
        bad: list[tuple[tuple, str]] = []
        for row in rows:
            try:
                good.append(decode(*row))
            except BadEntry as exc:
                bad.append((row, str(exc)))
        if bad:
            self.set_aside(bad)
        return good, (rows[-1][0] if rows else None)

    def iter_all(self, chunk: int = 5000) -> Iterator[list[Entry]]:
        after = 0
        while True:
            entries, last = self._read(after, chunk)
            if last is None:
                return
            if entries:
                yield entries
            after = last

    def set_aside(self, bad: Sequence[tuple[tuple, str]]) -> None:
        """Move damaged rows ``(row, why)`` to ``quarantine/<journal>.rows.jsonl`` (0600, verbatim,
        one JSON line each, with why) and delete them from the journal. :attr:`damaged` collects
        ``(seq, why)`` of the rows moved, :attr:`damage_file` where they went; if they cannot be
        written there (:attr:`damage_problem`), they stay in the journal."""
        target = self.path.parent / QUARANTINE_DIR / f"{self.path.stem}.rows.jsonl"
        lines = []
        for (seq, run_id, kind, key, payload), why in bad:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            lines.append(json.dumps({"seq": seq, "run_id": run_id, "kind": kind, "key": key,
                                     "payload": text if isinstance(text, str) else repr(text), "why": why}))
        try:
            target.parent.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, ("\n".join(lines) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.damage_problem = f"could not write {target} ({exc})"
            return
        self.remove([row[0] for row, _why in bad])
        self.damaged.extend((row[0], why) for row, why in bad)
        self.damage_file = target

    def count(self) -> int:
        """Entries not yet acknowledged (rows kept only by a full disk do not count)."""
        with self._mutex:
            return self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] - len(self._unremoved)

    def meta(self, key: str) -> str | None:
        with self._mutex:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ closing
    def forget_lock(self) -> None:
        """In a forked child: close the inherited lock descriptor without releasing the lock."""
        self._lock.forget()

    def close(self) -> bool:
        """Close; delete the files if no entry is left. True if deleted."""
        self.remove([])  # rows acknowledged while the disk was full
        with self._mutex:
            empty = self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == len(self._unremoved)
            self._conn.close()
            if empty:
                _unlink_database(self.path)
            self._lock.release(delete=empty)
        return empty


class JournalUnwritable(Exception):
    """The journal folder cannot take more data right now (a full disk, a read-only or missing
    folder); ``str(exc)`` names the folder, the cause and the space left on its filesystem."""

    def __init__(self, folder: Path, cause: BaseException) -> None:
        self.folder, self.cause = folder, cause
        self.full = _is_full(cause)
        self.free = _free_bytes(folder)
        what = "the disk is full" if self.full else f"{type(cause).__name__}: {cause}"
        room = f"{_size(self.free)} free on its filesystem" if self.free is not None else "free space unknown"
        super().__init__(f"cannot write the journal in {folder} ({what}; {room})")


def _is_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or (
        isinstance(exc, sqlite3.Error) and ("full" in str(exc) or getattr(exc, "sqlite_errorcode", 0) == 13))


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _unlink_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


class UnusableJournal(Exception):
    """A ``*.db`` file in a journal folder that is not a readable journal (still locked by us)."""

    def __init__(self, path: Path, lock: ProcessLock, why: str) -> None:
        super().__init__(f"{path.name}: {why}")
        self.path, self.lock, self.why = path, lock, why

    def quarantine(self) -> Path:
        """Move the file (and its WAL/SHM files) to ``<folder>/quarantine/`` and drop its lock;
        returns where it went."""
        folder = self.path.parent / QUARANTINE_DIR
        folder.mkdir(exist_ok=True, mode=0o700)
        target = folder / self.path.name
        if target.exists():
            target = folder / f"{self.path.stem}-{int(time.time())}{self.path.suffix}"
        for suffix in ("-wal", "-shm", ""):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{target}{suffix}")
        self.lock.release(delete=True)
        return target


def _why_unusable(size: int, exc: BaseException) -> str:
    if size == 0:
        return "an empty file: its process ended before it wrote anything"
    return f"not a readable SQLite journal ({exc})"


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={settings.journal_sync()}")
        if create:
            os.chmod(path, 0o600)
            conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()  # never leave its descriptor open (a full disk fails right here)
        raise
    return conn


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "host"
