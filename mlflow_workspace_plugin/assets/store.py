"""One storage rule for the workspace's versioned assets (data, environments, components).

Assets live **in the workspace's tracking store**, so every machine that reaches the workspace sees
the same ones, for a local workspace (``azureml-local://``) and over ``azureml://`` alike: the
experiment :data:`ASSETS_EXPERIMENT` holds one finished run per asset version, tagged with the asset's
kind, name and version; the version's spec (the asset YAML, normalised) is the run's artifact
``asset.json`` and files that belong to the version (a data asset created from a local path) are the
run's artifacts under ``files/``. Registered models stay in MLflow's model registry.

Names and versions follow Azure ML's rules. A version that is not given is the next integer after the
highest integer version of that name. ``@latest`` is the newest version that is not archived.
Two machines creating the same name and version at the same moment: the earlier run wins, the later
one is deleted and gets the "already exists" error (checked after creating, as the store offers no
unique constraint).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

ASSETS_EXPERIMENT = "workspace-assets"
KINDS = ("data", "environment", "component")
SPEC_ARTIFACT = "asset.json"
FILES_ARTIFACT = "files"
LATEST = "latest"

KIND_TAG = "mlflow-workspace.asset.kind"
NAME_TAG = "mlflow-workspace.asset.name"
VERSION_TAG = "mlflow-workspace.asset.version"
ARCHIVED_TAG = "mlflow-workspace.asset.archived"
DESCRIPTION_TAG = "mlflow.note.content"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$")
_SHORT_REF_RE = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")
_LONG_REF_RE = re.compile(
    r"^azureml://(?:.*/)?(?P<plural>data|environments|components)/(?P<name>[^/]+)"
    r"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))$"
)
_PLURAL_TO_KIND = {"data": "data", "environments": "environment", "components": "component"}
_MAX_LISTED = 5000


class AssetError(MlflowException):
    """An asset that does not exist, already exists, or is named wrongly."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


@dataclass(frozen=True)
class AssetRef:
    """A parsed reference: ``azureml:<name>:<version>``, ``azureml:<name>@latest`` or the long form."""

    name: str
    version: str | None = None  # None means the label (``latest``)
    label: str = LATEST
    kind: str | None = None  # known from the long form only

    def __str__(self) -> str:
        return f"azureml:{self.name}:{self.version}" if self.version else f"azureml:{self.name}@{self.label}"


@dataclass(frozen=True)
class AssetVersion:
    """One stored version of an asset."""

    kind: str
    name: str
    version: str
    spec: dict[str, Any]
    run_id: str
    created_ms: int
    archived: bool = False
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    artifact_uri: str = ""

    @property
    def reference(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    @property
    def files_uri(self) -> str:
        """Artifact URI of the files stored with this version (``files/``)."""
        return f"{self.artifact_uri.rstrip('/')}/{FILES_ARTIFACT}"


def parse_reference(value: str) -> AssetRef | None:
    """The asset a job field refers to, or None when ``value`` is not an asset reference
    (``azureml://datastores/...`` paths and ``azureml://registries/...`` curated names are not)."""
    if not isinstance(value, str):
        return None
    short = _SHORT_REF_RE.match(value)
    if short:
        return AssetRef(name=short["name"], version=short["version"], label=short["label"] or LATEST)
    long = _LONG_REF_RE.match(value)
    if long and "/registries/" not in value:
        return AssetRef(name=long["name"], version=long["version"], label=long["label"] or LATEST,
                        kind=_PLURAL_TO_KIND[long["plural"]])
    return None


def validate_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise AssetError(f"Invalid asset {what} {name!r}: use letters, digits, '-', '_' and '.', "
                         "starting with a letter or digit (at most 255 characters)")
    return name


def validate_version(version: Any) -> str:
    version = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise AssetError(f"Invalid asset version {version!r}: use letters, digits, '-', '_' and '.', "
                         "starting with a letter or digit (at most 30 characters)")
    return version


class AssetStore:
    """Versioned assets of one workspace, kept in its tracking store (see the module docstring)."""

    def __init__(self, tracking_uri: str | None = None):
        from mlflow import MlflowClient

        if tracking_uri is None:
            from mlflow_workspace_plugin.workspace import Workspace

            tracking_uri = Workspace.from_config().get_mlflow_tracking_uri()
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri)
        self._experiment_id: str | None = None

    # ------------------------------------------------------------------ reading
    def list(self, kind: str, name: str | None = None, include_archived: bool = False) -> list[AssetVersion]:
        """Versions of ``kind`` (of one name if given), newest first."""
        _check_kind(kind)
        experiment_id = self._experiment(create=False)
        if experiment_id is None:
            return []
        query = f"tags.`{KIND_TAG}` = '{kind}'"
        if name is not None:
            query += f" AND tags.`{NAME_TAG}` = '{_quoted(validate_name(name))}'"
        runs = self._client.search_runs([experiment_id], filter_string=query, max_results=_MAX_LISTED,
                                        order_by=["attributes.start_time DESC"])
        versions = [self._version(run, with_spec=False) for run in runs]
        return [v for v in versions if include_archived or not v.archived]

    def get(self, kind: str, name: str, version: str | None = None) -> AssetVersion:
        """One version (``None`` or ``"latest"``: the newest one not archived); an error naming the
        versions that exist when there is no such version."""
        _check_kind(kind)
        validate_name(name)
        if version is None or version == LATEST:
            live = self.list(kind, name)
            if not live:
                raise AssetError(f"No {kind} asset named {name!r} in the workspace at {self._where()}"
                                 f"{_known(self.list(kind, include_archived=True), kind)}")
            return self._load_spec(live[0])
        version = validate_version(version)
        for candidate in self.list(kind, name, include_archived=True):
            if candidate.version == version:
                return self._load_spec(candidate)
        existing = [v.version for v in self.list(kind, name, include_archived=True)]
        hint = f"; its versions: {', '.join(existing)}" if existing else _known(self.list(kind), kind)
        raise AssetError(f"No version {version!r} of {kind} asset {name!r} in the workspace at "
                         f"{self._where()}{hint}")

    def resolve(self, kind: str, reference: str | AssetRef) -> AssetVersion:
        """The version a reference names (``azureml:<name>:<version>`` / ``@latest`` / long form)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if ref is None:
            raise AssetError(f"{reference!r} is not an asset reference: expected azureml:<name>:<version> "
                             "or azureml:<name>@latest")
        if ref.kind is not None and ref.kind != kind:
            raise AssetError(f"{reference} names a {ref.kind} asset where a {kind} asset is expected")
        if ref.version is None and ref.label != LATEST:
            raise AssetError(f"Unknown label {ref.label!r} in {reference}: only @latest is supported")
        return self.get(kind, ref.name, ref.version)

    def download_files(self, asset: AssetVersion, destination: str | os.PathLike) -> Path:
        """Copy the version's stored files into ``destination`` (created); returns the folder."""
        from mlflow.artifacts import download_artifacts

        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        return Path(download_artifacts(run_id=asset.run_id, artifact_path=FILES_ARTIFACT,
                                       dst_path=str(destination), tracking_uri=self.tracking_uri))

    # ------------------------------------------------------------------ writing
    def create(self, kind: str, name: str, spec: Mapping[str, Any], version: str | int | None = None,
               files: str | os.PathLike | None = None, description: str | None = None,
               tags: Mapping[str, str] | None = None) -> AssetVersion:
        """Store a new version. ``files`` (a file or folder) is uploaded with it; symlinks pointing
        outside a folder are refused before anything is stored."""
        _check_kind(kind)
        validate_name(name)
        if files is not None:
            files = Path(files)
            _check_files(files)
        existing = self.list(kind, name, include_archived=True)
        version = validate_version(version) if version is not None else _next_version(existing)
        if any(v.version == version for v in existing):
            raise AssetError(f"Version {version!r} of {kind} asset {name!r} already exists in the workspace "
                             f"at {self._where()}; give another version (versions are immutable)")
        run_tags = {KIND_TAG: kind, NAME_TAG: name, VERSION_TAG: version, ARCHIVED_TAG: "false",
                    "mlflow.runName": f"{kind}:{name}:{version}"}
        if description:
            run_tags[DESCRIPTION_TAG] = str(description)
        for key, value in (tags or {}).items():
            run_tags[f"asset.tag.{key}"] = str(value)
        run = self._client.create_run(self._experiment(create=True), tags=run_tags)
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory(prefix="mlflow-ws-asset-") as staging:
                spec_file = Path(staging) / SPEC_ARTIFACT
                spec_file.write_text(json.dumps(dict(spec), indent=2, sort_keys=True, default=str))
                self._client.log_artifact(run_id, str(spec_file))
            if files is not None:
                if files.is_dir():
                    self._client.log_artifacts(run_id, str(files), FILES_ARTIFACT)
                else:
                    self._client.log_artifact(run_id, str(files), FILES_ARTIFACT)
            self._client.set_terminated(run_id, "FINISHED")
        except BaseException:
            self._client.delete_run(run_id)
            raise
        same = [v for v in self.list(kind, name, include_archived=True) if v.version == version]
        if len(same) > 1 and min(same, key=lambda v: (v.created_ms, v.run_id)).run_id != run_id:
            self._client.delete_run(run_id)
            raise AssetError(f"Version {version!r} of {kind} asset {name!r} was created by another "
                             "process at the same moment; give another version")
        return self.get(kind, name, version)

    def set_archived(self, kind: str, name: str, version: str | None, archived: bool = True) -> list[AssetVersion]:
        """Archive (or restore) one version, or every version of ``name`` when ``version`` is None.
        Archived versions are hidden from ``list`` and ``@latest`` but still resolve by version."""
        targets = ([self.get(kind, name, version)] if version is not None
                   else self.list(kind, name, include_archived=True))
        if not targets:
            raise AssetError(f"No {kind} asset named {name!r} in the workspace at {self._where()}")
        for target in targets:
            self._client.set_tag(target.run_id, ARCHIVED_TAG, "true" if archived else "false")
        return targets

    # ------------------------------------------------------------------ internals
    def _experiment(self, create: bool) -> str | None:
        if self._experiment_id is None:
            experiment = self._client.get_experiment_by_name(ASSETS_EXPERIMENT)
            if experiment is None and create:
                from mlflow.exceptions import MlflowException

                try:
                    self._experiment_id = self._client.create_experiment(
                        ASSETS_EXPERIMENT, tags={"mlflow-workspace.assets": "true"})
                except MlflowException:  # created by another process meanwhile
                    self._experiment_id = self._client.get_experiment_by_name(ASSETS_EXPERIMENT).experiment_id
            elif experiment is not None:
                self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def _version(self, run, with_spec: bool) -> AssetVersion:
        tags = run.data.tags
        user_tags = {k[len("asset.tag."):]: v for k, v in tags.items() if k.startswith("asset.tag.")}
        version = AssetVersion(kind=tags[KIND_TAG], name=tags[NAME_TAG], version=tags[VERSION_TAG], spec={},
                               run_id=run.info.run_id, created_ms=run.info.start_time or 0,
                               archived=tags.get(ARCHIVED_TAG) == "true", description=tags.get(DESCRIPTION_TAG),
                               tags=user_tags, artifact_uri=run.info.artifact_uri)
        return self._load_spec(version) if with_spec else version

    def _load_spec(self, version: AssetVersion) -> AssetVersion:
        from dataclasses import replace

        from mlflow.artifacts import download_artifacts

        with tempfile.TemporaryDirectory(prefix="mlflow-ws-asset-") as staging:
            path = download_artifacts(run_id=version.run_id, artifact_path=SPEC_ARTIFACT, dst_path=staging,
                                      tracking_uri=self.tracking_uri)
            spec = json.loads(Path(path).read_text())
        return replace(version, spec=spec)

    def _where(self) -> str:
        from mlflow_workspace_plugin.uri import redact

        return redact(self.tracking_uri)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise AssetError(f"Unknown asset kind {kind!r}: expected one of {', '.join(KINDS)}")


def _check_files(path: Path) -> None:
    """Refuse what must never be uploaded: a missing path, or a symlink leading out of the folder."""
    if not path.exists():
        raise AssetError(f"Asset path {str(path)!r} does not exist")
    if path.is_symlink():
        raise AssetError(f"Asset path {str(path)!r} is a symlink; give the real file or folder")
    if not path.is_dir():
        return
    root = path.resolve()
    for current, dirs, names in os.walk(path):
        for entry in [*dirs, *names]:
            candidate = Path(current) / entry
            if candidate.is_symlink():
                target = candidate.resolve()
                if target != root and root not in target.parents:
                    raise AssetError(f"{candidate} is a symlink to {target}, outside {path}: "
                                     "links out of an asset folder are never uploaded; copy the file in")


def _next_version(existing: list[AssetVersion]) -> str:
    numbers = [int(v.version) for v in existing if v.version.isdigit()]
    return str(max(numbers, default=0) + 1)


def _known(versions: list[AssetVersion], kind: str) -> str:
    names = sorted({v.name for v in versions})
    if not names:
        return f" (it has no {kind} assets; create one with `mlflow-workspace {kind} create -f <file>`)"
    return f"; {kind} assets there: {', '.join(names[:20])}"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
