"""Isolated, cached virtualenvs layered over the interpreter running the plugin.

A job that declares an environment runs in ``<workspace home>/envs/<key>``: ``key`` is the content hash
of its requirements, the Python version and the site-packages folders it is layered over. The venv is

- **isolated**: its own ``site-packages`` comes first on ``sys.path`` and holds every package the
  requirements need in a version the running environment does not have; ``pip install`` in the job
  (its ``PATH`` and ``VIRTUAL_ENV`` point at the venv, which has its own ``pip``) lands there. The user's
  environment is never written to;
- **layered**: a ``.pth`` file calls ``site.addsitedir`` on the running interpreter's site-packages
  folders *after* the venv's own (so their ``.pth`` files, e.g. editable installs, work too): MLflow, this
  plugin and everything already installed are found without a reinstall, and the job's pins win;
- **cached**: built once (uv when it is found next to the interpreter or on PATH, else pip), reused with
  a ``stat`` of the layered folders and one small JSON read. A change to the layered environment
  (packages installed or removed there) makes the next use re-sync the venv. Two processes asking for
  the same venv at once build it once (a file lock; the second waits and reuses).

uv resolves the requirements with the running environment's versions as *preferences* (so a package
the user has in a fitting version is kept, as pip does for installed packages), then installs only the
resolved packages the running environment lacks or has in another version (``--no-deps``). pip sees the
layered packages itself (they are on its ``sys.path``) and never uninstalls outside the venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.environments.errors import EnvironmentProblem
from mlflow_workspace_plugin.file_lock import ProcessLock

LAYOUT = 1  # bump when the venv layout changes: old venvs are then rebuilt under new keys
MARKER = "mlflow-workspace-env.json"
PTH_FILE = "_mlflow_workspace_layer.pth"
UV, PIP = "uv", "pip"
LOCK_POLL_S = 0.2
_TAIL_LINES = 25

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CachedEnvironment:
    """A ready venv: where it is, how it was made, whether this call built it."""

    path: Path
    key: str
    builder: str
    requirements: tuple[str, ...]
    built: bool  # False: reused from the cache
    seconds: float

    @property
    def bin_dir(self) -> Path:
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin_dir / ("python.exe" if os.name == "nt" else "python")

    def variables(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with this venv active: ``VIRTUAL_ENV`` set, its ``bin`` first on ``PATH``."""
        rest = [part for part in env.get("PATH", os.defpath).split(os.pathsep) if part and part != str(self.bin_dir)]
        result = {**env, "VIRTUAL_ENV": str(self.path), "PATH": os.pathsep.join([str(self.bin_dir), *rest])}
        result.pop("PYTHONHOME", None)
        return result


def cache_root() -> Path:
    """``<workspace home>/envs`` (``$MLFLOW_WORKSPACE_HOME`` or ``~/.mlflow-workspace``)."""
    return local_workspace.default_home() / "envs"


def find_uv() -> str | None:
    """The uv executable next to the running interpreter, else on PATH."""
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("uv")


def layered_sites() -> list[str]:
    """The running interpreter's site-packages folders, in ``sys.path`` order (user site included
    when the interpreter uses it)."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [folder for folder in dict.fromkeys(folders) if os.path.isdir(folder)]


def environment_key(requirements: Iterable[str]) -> str:
    """Content hash of a requirement set for this interpreter and the folders it is layered over."""
    payload = {"layout": LAYOUT, "requirements": sorted(set(requirements)),
               "python": list(sys.version_info[:3]), "implementation": sys.implementation.name,
               "layered": layered_sites()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def is_built(requirements: Iterable[str], root: Path | None = None) -> bool:
    """Whether the cached venv of ``requirements`` is ready (reusable without a build)."""
    root = Path(root) if root is not None else cache_root()
    return _is_current(root / environment_key(dict.fromkeys(requirements)))


def ensure_environment(requirements: Iterable[str], *, description: str, builder: str | None = None,
                       progress: Progress | None = None, root: Path | None = None) -> CachedEnvironment:
    """The cached venv of ``requirements`` (already checked by :mod:`.requirement_rules`), built if needed.

    ``builder``: ``"uv"``, ``"pip"`` or None (uv when found, else pip). ``progress`` receives one line per
    step (default: stderr). Raises :class:`EnvironmentProblem` with uv's / pip's own reason when the
    requirements cannot be installed for this Python.
    """
    started = time.monotonic()
    requirements = tuple(dict.fromkeys(requirements))
    say = progress or _stderr
    tool = _choose_builder(builder)
    root = Path(root) if root is not None else cache_root()
    key = environment_key(requirements)
    path = root / key
    if _is_current(path):
        return _result(path, key, requirements, built=False, started=started)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock", say, description):
        if _is_current(path):  # built by another process while we waited
            return _result(path, key, requirements, built=False, started=started)
        say(f"building environment {description} ({len(requirements)} requirements) with {tool} in {path}")
        fresh = not (path / MARKER).exists()
        try:
            _build(path, requirements, tool, say)
        except BaseException:
            if fresh:
                shutil.rmtree(path, ignore_errors=True)
            raise
        _write_marker(path, requirements, tool)
    result = _result(path, key, requirements, built=True, started=started)
    say(f"environment {description} ready in {result.seconds:.1f} s")
    return result


# ---------------------------------------------------------------------------------------------- cache state
def _fingerprint() -> list[list]:
    return [[folder, os.stat(folder).st_mtime_ns] for folder in layered_sites()]


def _is_current(path: Path) -> bool:
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("fingerprint") == _fingerprint()


def _write_marker(path: Path, requirements: tuple[str, ...], tool: str) -> None:
    data = {"requirements": list(requirements), "builder": tool, "python": sys.version.split()[0],
            "layered": layered_sites(), "fingerprint": _fingerprint(), "built_at": time.time()}
    temporary = path / f".{MARKER}.tmp"
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path / MARKER)


def _result(path: Path, key: str, requirements: tuple[str, ...], *, built: bool, started: float) -> CachedEnvironment:
    try:
        tool = json.loads((path / MARKER).read_text(encoding="utf-8")).get("builder", "")
    except (OSError, ValueError):
        tool = ""
    return CachedEnvironment(path=path, key=key, builder=tool, requirements=requirements, built=built,
                             seconds=time.monotonic() - started)


class _locked:
    """Hold the build lock of one key (waiting, with one line saying so, while another process builds)."""

    def __init__(self, path: Path, say: Progress, description: str) -> None:
        self.path, self.say, self.description = path, say, description
        self.lock: ProcessLock | None = None

    def __enter__(self) -> _locked:
        told = False
        while (lock := ProcessLock.try_acquire(self.path)) is None:
            if not told:
                self.say(f"waiting for another process building environment {self.description}")
                told = True
            time.sleep(LOCK_POLL_S)
        self.lock = lock
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.release()


# ---------------------------------------------------------------------------------------------- building
def _choose_builder(builder: str | None) -> str:
    if builder not in (None, UV, PIP):
        raise EnvironmentProblem(f"Environment builder {builder!r} is not known; allowed: uv, pip")
    if builder == UV and find_uv() is None:
        raise EnvironmentProblem("env manager 'uv' needs the uv executable (pip install uv; looked next to "
                                 f"{sys.executable} and on PATH); or use env manager 'virtualenv' or 'local'")
    if builder is None:
        return UV if find_uv() else PIP
    return builder


def _build(path: Path, requirements: tuple[str, ...], tool: str, say: Progress) -> None:
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        shutil.rmtree(path, ignore_errors=True)
        if tool == UV:
            _run([find_uv(), "venv", "--seed", "--quiet", "--python", sys.executable, str(path)], say, "uv venv")
        else:
            _run([sys.executable, "-m", "venv", str(path)], say, "python -m venv")
    _write_layer(python)
    if not requirements:
        return
    with tempfile.TemporaryDirectory(prefix="mlflow-ws-env-") as scratch:
        wanted = Path(scratch) / "requirements.in"
        wanted.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        if tool == PIP:
            _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(wanted)], say,
                 "pip install")
            return
        resolved = Path(scratch) / "resolved.txt"
        resolved.write_text("\n".join(f"{name}=={version}" for name, version in _layered_versions().items()) + "\n",
                            encoding="utf-8")  # read by uv as preferences: keep what the user has where it fits
        _run([find_uv(), "pip", "compile", str(wanted), "-o", str(resolved), "--python", str(python),
              "--no-header", "--no-annotate"], say, "uv pip compile", show_stdout=False)
        overlay = _missing_from_layer(resolved.read_text(encoding="utf-8").splitlines())
        if overlay:
            missing = Path(scratch) / "overlay.txt"
            missing.write_text("\n".join(overlay) + "\n", encoding="utf-8")
            _run([find_uv(), "pip", "install", "--python", str(python), "--no-deps", "-r", str(missing)], say,
                 "uv pip install")
        else:
            say("every resolved package is already installed in the environment running the plugin")


def _write_layer(python: Path) -> None:
    """The ``.pth`` that puts the running interpreter's site-packages after the venv's own."""
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    folders = layered_sites()
    if any("\n" in folder or "\r" in folder for folder in folders):
        raise EnvironmentProblem(f"Cannot layer over site-packages folders {folders!r}: a name holds a newline")
    line = "import site; " + "; ".join(f"site.addsitedir({folder!r})" for folder in folders)
    Path(own, PTH_FILE).write_text(line + "\n", encoding="utf-8")


def _layered_versions() -> dict[str, str]:
    """name -> version of the distributions the running interpreter sees (first on ``sys.path`` wins),
    without local / editable installs (the index cannot offer those)."""
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if not name or canonicalize_name(name) in versions or dist.read_text("direct_url.json"):
            continue
        versions[canonicalize_name(name)] = dist.version
    return versions


def _missing_from_layer(resolved_lines: list[str]) -> list[str]:
    have = _layered_versions()
    overlay: list[str] = []
    for raw in resolved_lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        name = canonicalize_name(name.split("[", 1)[0].strip())
        if version and have.get(name) == version.split(";", 1)[0].strip():
            continue
        overlay.append(line)
    return overlay


def _run(command: list[str], say: Progress, what: str, show_stdout: bool = True) -> None:
    """Run a build step, its output shown live (stderr) and its last lines kept for the error
    (``show_stdout=False``: only its stderr, e.g. uv's progress without the resolved list)."""
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    env = {**os.environ, "NO_COLOR": "1", "PIP_NO_INPUT": "1"}
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(command, stdout=subprocess.PIPE if show_stdout else subprocess.DEVNULL,
                               stderr=subprocess.STDOUT if show_stdout else subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, env=env)
    stream = process.stdout if show_stdout else process.stderr
    assert stream is not None
    for line in stream:
        tail.append(line.rstrip())
        sys.stderr.write(f"  {line}")
    if process.wait() != 0:
        reason = "\n".join(part for part in tail if part.strip())
        raise EnvironmentProblem(f"{what} failed (exit code {process.returncode}) for Python "
                                 f"{sys.version.split()[0]} ({sys.executable}):\n{reason}")


def _stderr(message: str) -> None:
    sys.stderr.write(f"mlflow-workspace: {message}\n")
    sys.stderr.flush()
