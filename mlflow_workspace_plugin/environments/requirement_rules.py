"""What an environment's pip requirements may contain, checked before anything is installed.

Requirements come from files other people wrote (a job's conda file, a registered environment, the
workspace config) and go to uv / pip locally and to Ray's pip runtime env on a cluster. pip honours
*options* inside requirement files, and some of them change where every package comes from, so:

- allowed: PEP 508 requirements (``name[extra]>=1,<2; python_version < "3.12"``), a direct
  ``name @ https://...`` or ``name @ git+https://...`` reference (it names the one package it fetches),
  and local wheels / project folders **inside the job's code folder** (``./wheels/x.whl``, ``.``,
  ``file:...``; symlinks are resolved first, so a link pointing out is refused);
- refused: every pip option line (``--index-url``/``-i``, ``--extra-index-url``, ``--find-links``/``-f``,
  ``--trusted-host``: packages from another host; ``-e``/``--editable``; ``-r``/``-c`` are read by the
  conda-file reader before this check and are refused here), ``$`` anywhere (pip expands ``${VAR}``
  in requirement files: a variable's value, e.g. a token, could end up in a URL), ``http://`` and other
  URL schemes, local paths outside the code folder, more than :data:`MAX_REQUIREMENTS` lines or lines
  longer than :data:`MAX_LINE`.

Requirements never pass through a shell (they are written to a file handed to uv / pip), so a ``;``
can only start an environment marker, which must then parse as one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.version import Version

from mlflow_workspace_plugin.environments.errors import EnvironmentProblem

MAX_REQUIREMENTS = 500
MAX_LINE = 2000
_URL_SCHEMES = ("https", "git+https")
_HOST_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host")
_ALLOWED_TEXT = ("allowed: PEP 508 requirements (name, extras, versions, markers), name @ https://..., "
                 "local wheels or folders inside the job's code folder")


def check_requirements(lines: Iterable[str], *, source: str, code_dir: Path | None = None) -> tuple[str, ...]:
    """The requirements of ``lines`` (comments and blanks dropped, local paths made absolute), or an
    :class:`EnvironmentProblem` naming ``source``, the bad line and what is allowed."""
    result: list[str] = []
    for count, raw in enumerate(lines, start=1):
        if count > MAX_REQUIREMENTS:
            raise EnvironmentProblem(f"{source}: more than {MAX_REQUIREMENTS} requirements; split the environment")
        if not isinstance(raw, str):
            raise EnvironmentProblem(f"{source}: requirement {raw!r} is not a string; {_ALLOWED_TEXT}")
        text = _strip_comment(raw)
        if not text:
            continue
        if len(text) > MAX_LINE:
            raise EnvironmentProblem(f"{source}: requirement {text[:60]!r}... is longer than {MAX_LINE} characters")
        result.append(check_requirement(text, source=source, code_dir=code_dir))
    return tuple(result)


def check_requirement(text: str, *, source: str, code_dir: Path | None) -> str:
    """One requirement line, checked (see the module docstring)."""
    bad = f"{source}: requirement {text!r}"
    if "$" in text or "`" in text:
        raise EnvironmentProblem(f"{bad} contains '$' or '`' (pip would expand ${{VAR}} from the environment); "
                                 f"{_ALLOWED_TEXT}")
    if text.startswith("-"):
        option = text.split(None, 1)[0].split("=", 1)[0]
        if option in _HOST_OPTIONS:
            why = "would fetch packages from another host"
        elif option in ("-e", "--editable"):
            why = "is an editable install"
        else:
            why = "is a pip option"
        raise EnvironmentProblem(f"{bad} {why}; pip options are not allowed in an environment's requirements "
                                 f"({_ALLOWED_TEXT})")
    if _looks_like_path(text):
        return _local_path(text, bad, code_dir)
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise EnvironmentProblem(f"{bad} is not a valid requirement ({exc}); {_ALLOWED_TEXT}") from None
    if requirement.url:
        scheme = urlsplit(requirement.url).scheme
        if scheme == "file":
            _local_path(requirement.url, bad, code_dir)
        elif scheme not in _URL_SCHEMES:
            raise EnvironmentProblem(f"{bad} uses URL scheme {scheme!r}; allowed: https, git+https, or a local "
                                     "file inside the job's code folder")
    return text


def _strip_comment(raw: str) -> str:
    text = raw.strip()
    if text.startswith("#"):
        return ""
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip()
    return text


def _looks_like_path(text: str) -> bool:
    if text.startswith((".", "/", "~", "file:")):
        return True
    return "://" not in text and "@" not in text and text.endswith((".whl", ".tar.gz", ".zip"))


def _local_path(text: str, bad: str, code_dir: Path | None) -> str:
    value = text[len("file:"):] if text.startswith("file:") else text
    value = value.removeprefix("//")
    if code_dir is None:
        raise EnvironmentProblem(f"{bad} is a local path; local paths are only allowed in a job's own "
                                 "conda file, inside its code folder")
    root = code_dir.resolve()
    path = Path(value).expanduser()
    target = (path if path.is_absolute() else root / path).resolve()
    if target != root and root not in target.parents:
        raise EnvironmentProblem(f"{bad} points to {target}, outside the job's code folder {root}; "
                                 "copy the wheel or folder into the code folder")
    if not target.exists():
        raise EnvironmentProblem(f"{bad}: {target} does not exist")
    return str(target)


def relax_compatible_pins(requirements: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the requirements with each ``~=X.Y.Z`` widened to ``>=X.Y.Z,<X+1``, the requirements widened).

    For an environment published for another Python: its patch-level pins (``numpy~=1.22.0``) can name
    releases without wheels or resolvable together for this one; the same major release keeps the API.
    ``==`` pins, ``0.x`` pins (a minor release may break there), URLs and local paths are kept as written.
    """
    result: list[str] = []
    widened: list[str] = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:  # a local path (checked already)
            result.append(text)
            continue
        specifiers = [str(spec) for spec in requirement.specifier]
        wider = [_widen(spec) for spec in requirement.specifier]
        if requirement.url or wider == specifiers:
            result.append(text)
            continue
        requirement.specifier = SpecifierSet(",".join(wider))
        result.append(str(requirement))
        widened.append(text)
    return tuple(result), tuple(widened)


def _widen(spec: Specifier) -> str:
    if spec.operator != "~=":
        return str(spec)
    version = Version(spec.version)
    if version.major == 0 or len(version.release) < 3:  # ~=1.2 is >=1.2,<2 already
        return str(spec)
    return f">={spec.version},<{version.major + 1}"
