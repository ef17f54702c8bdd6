"""Parallel, pooled artifact transfers: many files up or down through a bounded pool of workers.

Public API (works for any artifact repository MLflow returns; the capture uploads call it too):

* :func:`upload_tree` ``(target, local_dir, artifact_path=None, files=None)`` - a folder (or the
  listed ``files`` in it) to ``artifact_path``;
* :func:`upload_file` ``(target, local_file, artifact_path=None)`` - one file;
* :func:`download_tree` ``(target, artifact_path=None, dst_path=None)`` - a file or folder, like
  ``ArtifactRepository.download_artifacts``.

``target`` is an ``ArtifactRepository``, an artifact URI (``runs:/<id>/...``,
``mlflow-artifacts:/...``, resolved against ``tracking_uri`` or the current one), or an
``MlflowClient`` together with ``run_id=``. For a workspace repository (``azureml://`` tracking URI)
each file is one ``PUT``/``GET`` over pooled keep-alive sessions with the workspace's token and
retry policy (:mod:`.transfer_http`); for any other repository each file goes through the
repository's own ``log_artifact`` / ``_download_file``, run in the same pool.

Pool size: ``MLFLOW_WORKSPACE_TRANSFER_WORKERS`` (default :data:`DEFAULT_WORKERS`, an integer
1..:data:`MAX_WORKERS`), validated before anything is sent.

Failures: a file that fails is tried again, file by file, in up to :data:`FILE_ATTEMPTS` rounds
(the one retry policy, :data:`~mlflow_workspace_plugin.reliable.retry.FILE_ROUNDS`: 0.5 s, then
1 s between rounds; each request inside an attempt is itself retried, ``TRANSFERS``); answers that another
attempt cannot change (a 4xx other than 408/425/429) are not repeated. What still failed is raised
as one :class:`ArtifactTransferError` naming every such file, its artifact path and the server's
answer, and how many files did arrive: a transfer is complete or it raises, never silently partial.
A rejected credential stops the whole transfer at once with the workspace's auth error.
"""

from __future__ import annotations

import math
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tenacity
from mlflow.exceptions import MlflowException, get_error_code
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from mlflow_workspace_plugin import auth, mlflow_compat
from mlflow_workspace_plugin.env_settings import env_number
from mlflow_workspace_plugin.reliable.retry import FILE_ROUNDS
from mlflow_workspace_plugin.store.transfer_http import FileFailed
from mlflow_workspace_plugin.store.transfer_progress import TransferProgress

WORKERS_ENV = "MLFLOW_WORKSPACE_TRANSFER_WORKERS"
DEFAULT_WORKERS = 8
MAX_WORKERS = 64
FILE_ATTEMPTS = FILE_ROUNDS.max_attempts
MAX_LISTED_FAILURES = 20


def pool_size() -> int:
    """Workers per transfer from ``$MLFLOW_WORKSPACE_TRANSFER_WORKERS`` (validated)."""
    try:
        value = env_number(WORKERS_ENV, DEFAULT_WORKERS, allow_zero=False)
    except MlflowException:
        value = math.nan
    if not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_WORKERS:
        raise MlflowException(
            f"{WORKERS_ENV}={os.environ.get(WORKERS_ENV, '').strip()!r} is not allowed: use a whole number "
            f"of parallel transfers from 1 to {MAX_WORKERS} (default {DEFAULT_WORKERS})",
            error_code=INVALID_PARAMETER_VALUE)
    return int(value)


@dataclass(frozen=True)
class FileTask:
    """One file to move: ``local`` on this machine, ``remote`` relative to the artifact root."""

    local: str
    remote: str
    size: int = 0


@dataclass
class Transferred:
    """What a finished transfer moved."""

    files: int
    bytes: int
    seconds: float
    local_path: str | None = None  # downloads: where the artifacts are now
    artifact_paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    task: FileTask
    answer: str
    attempts: int
    retry: bool = False  # another attempt may succeed
    status: int | None = None  # the server's HTTP status, if it answered
    error_code: str | None = None  # the MLflow error code of its answer, if any


class ArtifactTransferError(MlflowException):
    """Some files of a transfer failed for good; the message names each one and the answer."""

    def __init__(self, verb: str, where: str, failures: Sequence[Failure], done: int, total: int) -> None:
        self.failures = list(failures)
        arrow = "->" if verb == "upload" else "<-"
        lines = [f"  {f.task.local} {arrow} artifact {f.task.remote!r}: {f.answer} "
                 f"({f.attempts} attempt{'s' if f.attempts != 1 else ''})"
                 for f in self.failures[:MAX_LISTED_FAILURES]]
        if len(self.failures) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(self.failures) - MAX_LISTED_FAILURES} more")
        state = (f"{done} of {total} files were {verb}ed; the artifacts at {where} are incomplete"
                 if verb == "upload" else f"{done} of {total} files were downloaded")
        super().__init__(f"Could not {verb} {len(self.failures)} of {total} file(s) ({state}):\n" + "\n".join(lines),
                         error_code=_common_error_code(self.failures))


def _common_error_code(failures: Sequence[Failure]) -> int:
    """The MLflow error code all failures share (from the answers, else their HTTP status)."""
    from mlflow.protos.databricks_pb2 import ErrorCode

    codes = {f.error_code or (ErrorCode.Name(get_error_code(f.status)) if f.status else None) for f in failures}
    code = codes.pop() if len(codes) == 1 else None
    return ErrorCode.Value(code) if code in ErrorCode.keys() else INTERNAL_ERROR


# ------------------------------------------------------------------ how one file moves
class _RepositoryFiles:
    """Files moved by the repository's own single-file methods (any MLflow repository)."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def put(self, task: FileTask, on_bytes: Callable[[int], None]) -> int:
        folder = posixpath.dirname(task.remote)
        if posixpath.basename(task.remote) != os.path.basename(task.local):
            raise FileFailed("this repository stores a file under its own name only", retry=False)
        try:
            self.repo.log_artifact(task.local, folder or None)
        except auth.WorkspaceAuthError:
            raise
        except Exception as exc:
            raise FileFailed(f"{type(exc).__name__}: {_short(exc)}", _retryable(exc), _status(exc)) from None
        on_bytes(task.size)
        return task.size

    def get(self, task: FileTask, on_bytes: Callable[[int], None]) -> int:
        folder, name = os.path.split(task.local)
        partial = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            mlflow_compat.download_file(self.repo, task.remote, partial)
            os.replace(partial, task.local)
        except Exception as exc:
            _remove_quietly(partial)
            if isinstance(exc, auth.WorkspaceAuthError):
                raise
            raise FileFailed(f"{type(exc).__name__}: {_short(exc)}", _retryable(exc), _status(exc)) from None
        size = os.path.getsize(task.local)
        on_bytes(size)
        return size


class _WorkspaceFiles:
    """Files of a workspace repository: pooled sessions, token and retry policy per request;
    large files through MLflow's multipart path where the workspace offers it."""

    def __init__(self, repo: Any) -> None:
        from mlflow_workspace_plugin.store.transfer_http import WorkspaceFiles

        self.files = WorkspaceFiles(repo.scope, repo.artifact_uri)
        self.repo = repo
        self.workers = pool_size()

    def put(self, task: FileTask, on_bytes: Callable[[int], None]) -> int:
        from mlflow_workspace_plugin.store import transfer_multipart

        if transfer_multipart.wanted(self.files, task.size):
            return transfer_multipart.upload(self.files, task.local, task.remote, task.size, on_bytes)
        return self.files.put(task.local, task.remote, on_bytes)

    def get(self, task: FileTask, on_bytes: Callable[[int], None]) -> int:
        return self.files.get(task.remote, task.local, on_bytes, task.size, self.workers)


def _movers(repo: Any) -> _RepositoryFiles | _WorkspaceFiles:
    from mlflow_workspace_plugin.store.artifact_repo import WorkspaceArtifactRepository

    return _WorkspaceFiles(repo) if isinstance(repo, WorkspaceArtifactRepository) else _RepositoryFiles(repo)


# ------------------------------------------------------------------ the pool
class _FilesLeft(Exception):
    """Some files failed in a way another round may fix."""


def _run(tasks: list[FileTask], move: Callable[[FileTask, Callable[[int], None]], int], verb: str,
         label: str, where: str, workers: int, progress: bool | None) -> Transferred:
    started = time.perf_counter()
    total_bytes = sum(task.size for task in tasks)
    failures: dict[FileTask, Failure] = {}
    attempts: dict[FileTask, int] = {}
    moved = [0, 0]
    lock = threading.Lock()
    stop = threading.Event()
    fatal: list[BaseException] = []

    with TransferProgress(verb.capitalize() + "ing", label, len(tasks), total_bytes, progress) as bar:
        def one(task: FileTask) -> None:
            if stop.is_set():
                return
            attempts[task] = attempts.get(task, 0) + 1
            try:
                size = move(task, lambda nbytes: bar.add(nbytes=nbytes))
            except FileFailed as exc:
                with lock:
                    failures[task] = Failure(task, exc.answer, attempts[task], exc.retry, exc.status,
                                             exc.error_code)
                return
            except auth.WorkspaceAuthError as exc:  # every other file would fail the same way
                with lock:
                    fatal.append(exc)
                stop.set()
                return
            except Exception as exc:
                with lock:
                    failures[task] = Failure(task, f"{type(exc).__name__}: {_short(exc)}", attempts[task],
                                             _retryable(exc))
                return
            with lock:
                failures.pop(task, None)
                moved[0] += 1
                moved[1] += size
            bar.add(files=1)

        pending = list(tasks)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks))),
                                thread_name_prefix=f"artifact-{verb}") as pool:
            def one_round() -> None:
                nonlocal pending
                list(pool.map(one, pending))
                if fatal:
                    raise fatal[0]
                pending = [task for task, failure in failures.items() if failure.retry]
                if pending:
                    raise _FilesLeft()

            try:
                FILE_ROUNDS.retrying(retry=tenacity.retry_if_exception_type(_FilesLeft),
                                     wait=lambda state: FILE_ROUNDS.backoff(state.attempt_number))(one_round)
            except _FilesLeft:
                pass  # reported below, file by file
    if failures:
        raise ArtifactTransferError(verb, where, sorted(failures.values(), key=lambda f: f.task.remote),
                                    moved[0], len(tasks))
    return Transferred(moved[0], moved[1], time.perf_counter() - started,
                       artifact_paths=[task.remote for task in tasks])


# ------------------------------------------------------------------ public API
def resolve_repository(target: Any, run_id: str | None = None, tracking_uri: str | None = None) -> Any:
    """The artifact repository behind ``target`` (see module doc); ``runs:/`` wrappers unwrapped."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    if isinstance(target, MlflowClient):
        if not run_id:
            raise MlflowException("run_id is required when the transfer target is an MlflowClient",
                                  error_code=INVALID_PARAMETER_VALUE)
        tracking_uri = target.tracking_uri
        target = target.get_run(run_id).info.artifact_uri
    if isinstance(target, str):
        target = get_artifact_repository(target, tracking_uri=tracking_uri)
    if not isinstance(target, ArtifactRepository):
        raise MlflowException(f"Cannot transfer artifacts with {type(target).__name__}: pass an artifact "
                              "repository, an artifact URI, or an MlflowClient with run_id",
                              error_code=INVALID_PARAMETER_VALUE)
    while isinstance(target, RunsArtifactRepository):
        target = target.repo
    return target


def plan_upload(local_dir: str | os.PathLike[str], artifact_path: str | None = None,
                files: Iterable[str | os.PathLike[str]] | None = None) -> list[FileTask]:
    """The files under ``local_dir`` (or only ``files``, relative to it or absolute inside it)
    with their artifact paths, in a stable order."""
    root = Path(local_dir).resolve()
    if not root.is_dir():
        raise MlflowException(f"Cannot upload {str(local_dir)!r}: not a folder", error_code=RESOURCE_DOES_NOT_EXIST)
    if files is None:
        chosen = sorted(Path(folder, name) for folder, _, names in os.walk(root) for name in names)
    else:
        chosen = []
        for item in files:
            path = Path(item) if Path(item).is_absolute() else root / item
            resolved = path.resolve()
            if root not in resolved.parents:
                raise MlflowException(f"Cannot upload {str(item)!r}: it is not inside {str(root)!r}",
                                      error_code=INVALID_PARAMETER_VALUE)
            chosen.append(path)
    tasks = []
    prefix = (artifact_path or "").strip("/")
    for path in chosen:
        if not path.is_file():
            continue  # sockets, broken links, files deleted since the walk
        rel = path.relative_to(root).as_posix()
        tasks.append(FileTask(str(path), posixpath.join(prefix, rel) if prefix else rel, path.stat().st_size))
    return tasks


def upload_tree(target: Any, local_dir: str | os.PathLike[str], artifact_path: str | None = None,
                files: Iterable[str | os.PathLike[str]] | None = None, *, run_id: str | None = None,
                tracking_uri: str | None = None, progress: bool | None = None) -> Transferred:
    """Upload the folder ``local_dir`` (or only ``files`` in it) to ``artifact_path`` in parallel.
    ``progress=False`` never shows a bar (None: only for slow transfers on a terminal)."""
    workers = pool_size()
    repo = resolve_repository(target, run_id, tracking_uri)
    tasks = plan_upload(local_dir, artifact_path, files)
    if not tasks:
        return Transferred(0, 0, 0.0)
    label = repr(artifact_path or ".")
    return _run(tasks, _movers(repo).put, "upload", label, _where(repo, artifact_path), workers, progress)


def upload_file(target: Any, local_file: str | os.PathLike[str], artifact_path: str | None = None, *,
                run_id: str | None = None, tracking_uri: str | None = None,
                progress: bool | None = None) -> Transferred:
    """Upload one file to ``artifact_path/<its name>`` (streamed, retried, honest errors)."""
    local = Path(local_file)
    if not local.is_file():
        raise MlflowException(f"Cannot upload {str(local_file)!r}: not a file", error_code=RESOURCE_DOES_NOT_EXIST)
    repo = resolve_repository(target, run_id, tracking_uri)
    prefix = (artifact_path or "").strip("/")
    task = FileTask(str(local), posixpath.join(prefix, local.name) if prefix else local.name, local.stat().st_size)
    return _run([task], _movers(repo).put, "upload", repr(task.remote), _where(repo, artifact_path), 1, progress)


def download_tree(target: Any, artifact_path: str | None = None, dst_path: str | os.PathLike[str] | None = None,
                  *, run_id: str | None = None, tracking_uri: str | None = None,
                  progress: bool | None = None) -> str:
    """Download the file or folder ``artifact_path`` (None: everything) in parallel; same result
    and return value as ``ArtifactRepository.download_artifacts`` (the local path)."""
    from mlflow.utils.file_utils import create_tmp_dir

    workers = pool_size()
    repo = resolve_repository(target, run_id, tracking_uri)
    if dst_path is not None:
        dst = os.path.abspath(dst_path)
        if not os.path.isdir(dst):
            raise MlflowException(f"The destination path for downloaded artifacts must be an existing folder: "
                                  f"{dst}", error_code=RESOURCE_DOES_NOT_EXIST)
    else:
        dst = create_tmp_dir()
    path = (artifact_path or "").strip("/")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="artifact-list") as lister:
        files, empty_dirs, is_dir = _walk(repo, path, lister)
    for folder in empty_dirs:
        os.makedirs(_destination(repo, folder, dst, create=False), exist_ok=True)
    tasks = [FileTask(_destination(repo, info.path, dst), info.path, info.file_size or 0) for info in files]
    if tasks:
        _run(tasks, _movers(repo).get, "download", repr(path or "."), _where(repo, artifact_path), workers, progress)
    if path:
        return os.path.join(dst, os.path.normpath(path)) if is_dir or tasks else dst
    return dst


# ------------------------------------------------------------------ helpers
def _walk(repo: Any, path: str, lister: ThreadPoolExecutor) -> tuple[list[Any], list[str], bool]:
    """Files (``FileInfo``) under ``path``, folders that are empty, and whether ``path`` is a folder.
    Folders of one level are listed in parallel."""
    if path:
        top = repo.list_artifacts(path)
        if not top:  # a single file: its size comes from its folder's listing
            from mlflow.entities import FileInfo

            parent = posixpath.dirname(path)
            sizes = {info.path: info.file_size for info in repo.list_artifacts(parent or None) if not info.is_dir}
            return [FileInfo(path, False, sizes.get(path))], [], False
        levels = [(path, top)]
    else:
        levels = [("", repo.list_artifacts(None))]
    files: list[Any] = []
    empty: list[str] = []
    while levels:
        folders = []
        for folder, listing in levels:
            entries = [info for info in listing if info.path not in (".", folder)]
            if not entries and folder:
                empty.append(folder)
            for info in entries:
                (folders if info.is_dir else files).append(info.path if info.is_dir else info)
        levels = list(zip(folders, lister.map(repo.list_artifacts, folders), strict=True))
    return files, empty, True


def _destination(repo: Any, remote: str, dst: str, create: bool = True) -> str:
    if create:
        return mlflow_compat.download_destination(repo, remote, dst)
    from mlflow.utils.uri import validate_path_within_directory

    target = os.path.join(dst, os.path.normpath(remote))
    validate_path_within_directory(dst, target)
    return target


def _where(repo: Any, artifact_path: str | None) -> str:
    source = getattr(repo, "source_uri", None) or repo.artifact_uri
    from mlflow_workspace_plugin.uri import redact

    return redact(posixpath.join(source, artifact_path) if artifact_path else source)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("..." if len(text) > 400 else "")


def _status(exc: BaseException) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is None and isinstance(exc, MlflowException):
        status = exc.get_http_status_code()
    return status if isinstance(status, int) else None


def _retryable(exc: BaseException) -> bool:
    status = _status(exc)
    return status is None or status in (408, 425, 429) or status >= 500


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


__all__ = ["ArtifactTransferError", "DEFAULT_WORKERS", "MAX_WORKERS", "Transferred", "WORKERS_ENV",
           "download_tree", "plan_upload", "pool_size", "resolve_repository", "upload_file", "upload_tree"]
