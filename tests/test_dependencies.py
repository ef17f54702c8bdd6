"""Every third-party module the package imports comes from a distribution pyproject.toml declares
(directly, or in the extra of the feature that imports it)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlflow_workspace_plugin"
# modules a feature with an extra imports, and the extra that declares them
EXTRA_IMPORTS = {"ray": "ray", "starlette": "ray"}  # starlette: Ray Serve's request types (deploy/ray_app.py)
SCRIPT_IMPORTS = {"processes"}  # deploy/endpoint_proxy.py run as a script imports its sibling module


def _imported_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != PACKAGE.name and top not in SCRIPT_IMPORTS:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_imported_module_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    extras = {name: {_requirement_name(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    providers = packages_distributions()
    undeclared = {}
    for module, files in sorted(_imported_modules().items()):
        if module in EXTRA_IMPORTS:
            assert EXTRA_IMPORTS[module] in extras, f"{module}: extra {EXTRA_IMPORTS[module]!r} is not declared"
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if module == "azure":  # a namespace many distributions share: the one we use
            dists &= {"azure-identity"}
        if module == "pydantic_core":  # pydantic's own core, pinned by pydantic itself
            dists |= {"pydantic"}
        if not dists & declared:
            undeclared[module] = (sorted(dists), sorted(files))
    assert undeclared == {}, f"imported but not declared in pyproject.toml dependencies: {undeclared}"
