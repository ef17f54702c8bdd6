"""Turn a validated :class:`CommandJobSection` (either spelling) into the one :class:`CommandJob`.

Here live the checks that need more than types: paths resolved against the YAML's folder and required to
exist, preview fields translated, placeholders matched against the declared inputs/outputs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from mlflow_workspace_plugin.compute.resources import SHAPE_KEYS, ResourceShape
from mlflow_workspace_plugin.jobs.errors import JobSpecError, allowed_list, did_you_mean
from mlflow_workspace_plugin.jobs.placeholders import find_placeholders, normalize_command
from mlflow_workspace_plugin.jobs.schema import (
    MODEL_TYPES,
    Code,
    CommandJobSection,
    Compute,
    DataInputSection,
    EnvironmentSection,
    Mpi,
    OutputSection,
    PyTorch,
    Resources,
    TensorFlow,
    override_note,
)
from mlflow_workspace_plugin.jobs.spec import (
    CommandJob,
    DataInput,
    Environment,
    JobOutput,
    LiteralInput,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
)
from mlflow_workspace_plugin.store.datastores import STORAGE_SCHEMES, is_storage_uri

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
IO_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SUPPORTED_LOCATIONS = ("a local path (relative to the YAML file), file://, http(s)://, runs:/, models:/, "
                       "azureml://datastores/<store>/paths/<path>, wasbs://, abfss:// URI or a data asset "
                       "azureml:<name>:<version> / azureml:<name>@latest")
FOLDER_TYPES = ("uri_folder", "mltable", *MODEL_TYPES)
IGNORED_TOP_LEVEL = ("services", "identity", "queue_settings", "properties")


class Normalizer:
    """One job's normalisation: knows the file (for messages and relative paths) and the field prefix."""

    def __init__(
        self,
        source_file: Path,
        *,
        shown_file: str | Path | None = None,
        field_prefix: str = "",
        overridden: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.source_file = source_file
        self.overridden = overridden
        self.base = source_file.parent
        self.shown_file = str(shown_file if shown_file is not None else source_file)
        self.prefix = field_prefix

    def error(self, field: str, problem: str) -> JobSpecError:
        full = self._full(field)
        return JobSpecError.at(self.shown_file, full or None, problem + override_note(full, self.overridden))

    def job(
        self, section: CommandJobSection, *, name: str | None = None, search_space: Collection[str] | None = None
    ) -> CommandJob:
        job_name = name if name is not None else section.name
        if job_name is not None and not NAME_PATTERN.fullmatch(job_name):
            raise self.error(
                "name", f"{job_name!r} is not a valid job name; allowed: letters, digits, - and _ "
                "(starting with a letter or digit, at most 255 characters)"
            )
        compute, compute_instances = self.compute(section.compute)
        instance_count = self.instance_count(compute_instances, section)
        inputs = {key: self.input(key, value) for key, value in (section.inputs or {}).items()}
        outputs = {key: self.output(key, value) for key, value in (section.outputs or {}).items()}
        command = normalize_command(section.command, source_file=self.shown_file, field=self._full("command"))
        if not command:
            raise self.error("command", "is empty; give the command to run, e.g. python main.py")
        self.check_placeholders(section.command, inputs, outputs, search_space)  # as written, for the messages
        experiment_name = section.experiment_name if section.experiment_name is not None else self.base.name
        if not experiment_name.strip():
            raise self.error("experiment_name", "is empty")
        return CommandJob(
            source_file=self.source_file,
            name=job_name,
            display_name=section.display_name,
            experiment_name=experiment_name,
            description=section.description,
            tags=_texts(section.tags),
            code=self.code(section.code),
            command=command,
            environment_variables=_texts(section.environment_variables),
            environment=self.environment(section.environment),
            compute=compute,
            instance_count=instance_count,
            instance_type=section.resources.instance_type if section.resources else None,
            resources=self.resources(section.resources),
            distribution=self.distribution(section.distribution, instance_count),
            timeout=section.limits.timeout if section.limits else None,
            inputs=inputs,
            outputs=outputs,
            ignored_fields=self.ignored(section),
        )

    # --- where, how many -------------------------------------------------------------------------------

    def compute(self, value: str | Compute | None) -> tuple[str, int | None]:
        field, instances = "compute", None
        if isinstance(value, Compute):
            field, instances, value = "compute.target", value.instance_count, value.target
        target = value if value is not None else "local"
        target = target.removeprefix("azureml:").strip()
        if not target or any(c.isspace() for c in target):
            raise self.error(field, f"{value!r} is not a compute target; allowed: local or <name> / azureml:<name>")
        return target, instances

    def resources(self, section: Resources | None) -> ResourceShape | None:
        """``resources.properties``' shape keys: what one instance asks for (the other keys are ignored)."""
        asked = {key: value for key, value in ((section.properties or {}) if section else {}).items()
                 if key in SHAPE_KEYS}
        if not asked:
            return None
        return ResourceShape.parse(asked, "properties", lambda why: self.error("resources", why))

    def instance_count(self, from_compute: int | None, section: CommandJobSection) -> int:
        from_resources = section.resources.instance_count if section.resources else None
        if from_compute and from_resources and from_compute != from_resources:
            raise self.error(
                "resources.instance_count",
                f"{from_resources} disagrees with compute.instance_count ({from_compute}); give only one of them",
            )
        return from_resources or from_compute or 1

    def distribution(self, value, instance_count: int):
        if value is None:
            return None
        if isinstance(value, PyTorch):
            if value.process_count is not None and value.process_count_per_instance is not None:
                raise self.error(
                    "distribution.process_count",
                    "give either process_count_per_instance (today) or process_count (2021 preview: total "
                    "processes), not both",
                )
            if value.process_count is not None:
                if value.process_count % instance_count:
                    raise self.error(
                        "distribution.process_count",
                        f"{value.process_count} total processes cannot be spread evenly over instance_count "
                        f"{instance_count}; give a multiple of {instance_count} or use process_count_per_instance",
                    )
                return PyTorchDistribution(process_count_per_instance=value.process_count // instance_count)
            return PyTorchDistribution(process_count_per_instance=value.process_count_per_instance or 1)
        if isinstance(value, TensorFlow):
            return TensorFlowDistribution(
                worker_count=value.worker_count or instance_count, parameter_server_count=value.parameter_server_count
            )
        assert isinstance(value, Mpi)
        return MpiDistribution(process_count_per_instance=value.process_count_per_instance or 1)

    # --- what runs -------------------------------------------------------------------------------------

    def code(self, value: str | Code | None) -> Path | None:
        if value is None:
            return None
        field, text = ("code.local_path", value.local_path) if isinstance(value, Code) else ("code", value)
        if text.startswith(("azureml:", "http://", "https://", "git+")):
            raise self.error(field, f"{text!r} is not supported here; give a local folder relative to the YAML file")
        folder = self.local(text)
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise self.error(field, f"{folder} {what} (code is a folder, relative to the YAML file's folder)")
        return folder

    def environment(self, value: str | EnvironmentSection | None) -> Environment | None:
        if value is None:
            return None
        if isinstance(value, str):
            if not value.startswith("azureml:") or len(value) <= len("azureml:"):
                raise self.error(
                    "environment",
                    f"{value!r} is not an environment reference; allowed: azureml:<name>:<version>, "
                    "azureml:<name>@latest, or a mapping with image / conda_file",
                )
            return Environment(reference=value)
        docker_image = value.docker.image if value.docker else None
        if value.image and docker_image and value.image != docker_image:
            raise self.error("environment.docker.image", "disagrees with environment.image; give only one")
        conda_file = conda_inline = None
        if isinstance(value.conda_file, dict):
            conda_inline = value.conda_file
        elif value.conda_file is not None:
            conda_file = self.existing_file("environment.conda_file", value.conda_file.removeprefix("file:"))
        build_context, dockerfile = self.build(value)
        environment = Environment(
            image=value.image or docker_image,
            conda_file=conda_file,
            conda_inline=conda_inline,
            build_context=build_context,
            dockerfile=dockerfile,
        )
        if environment == Environment():
            raise self.error("environment", "is empty; give image, conda_file or build (or an azureml: reference)")
        return environment

    def build(self, value: EnvironmentSection) -> tuple[Path | None, str | None]:
        if value.build is not None:
            folder = self.local(value.build.path)
            if not folder.is_dir():
                raise self.error("environment.build.path", f"{folder} is not a folder")
            return folder, value.build.dockerfile_path or "Dockerfile"
        if value.docker and value.docker.build:
            dockerfile = value.docker.build.get("dockerfile")
            if not isinstance(dockerfile, str):
                raise self.error("environment.docker.build.dockerfile", "expected a path to a Dockerfile")
            path = self.existing_file("environment.docker.build.dockerfile", dockerfile.removeprefix("file:"))
            return path.parent, path.name
        return None, None

    # --- inputs and outputs ----------------------------------------------------------------------------

    def input(self, name: str, value) -> LiteralInput | DataInput:
        self.check_io_name("inputs", name)
        if not isinstance(value, DataInputSection):
            return LiteralInput(name=name, value=value)
        field = f"inputs.{name}"
        mode = "ro_mount" if value.mode in (None, "mount") else value.mode
        location, location_field = self.input_location(field, value)
        common = {"name": name, "mode": mode, "optional": value.optional, "description": value.description}
        if location is None:
            if not value.optional:
                raise self.error(f"{field}.path", "is missing; give " + SUPPORTED_LOCATIONS)
            return DataInput(type=value.type or "uri_folder", uri=None, **common)
        uri, local_path = self.resolve_location(location_field, location)
        if value.type in MODEL_TYPES and uri.startswith("azureml:") and not uri.startswith("azureml://"):
            uri = registered_model_uri(uri)  # the workspace's registered model (MLflow's model registry)
        data_type = self.data_type(location_field, value.type, uri, local_path)
        return DataInput(type=data_type, uri=uri, local_path=local_path, **common)

    def input_location(self, field: str, value: DataInputSection) -> tuple[str | None, str]:
        if value.path is not None and value.data is not None:
            raise self.error(f"{field}.data", "give either path (today's spelling) or data (2021 preview), not both")
        if value.data is None:
            return value.path, f"{field}.path"
        if isinstance(value.data, str):
            return value.data, f"{field}.data"
        if value.data.path is not None and value.data.local_path is not None:
            raise self.error(f"{field}.data", "give either path or local_path, not both")
        if value.data.local_path is not None:
            if "://" in value.data.local_path or value.data.local_path.startswith("azureml:"):
                raise self.error(f"{field}.data.local_path", "must be a local path; use data.path for URIs")
            return value.data.local_path, f"{field}.data.local_path"
        if value.data.path is None:
            raise self.error(f"{field}.data", "give path or local_path")
        return value.data.path, f"{field}.data.path"

    def resolve_location(self, field: str, text: str) -> tuple[str, Path | None]:
        """(uri, local path) for an input location; local paths must exist."""
        if text.startswith("azureml:") or text.lower().startswith(STORAGE_SCHEMES):
            return self.storage_or_asset(field, text), None
        parsed = urlparse(text)
        scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""  # "C:" is a drive, not a scheme
        if scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise self.error(field, f"{text!r}: file:// URIs must name this machine (file:///path)")
            path = self.local(url2pathname(unquote(parsed.path)) if parsed.path.startswith("/") else unquote(
                text[len("file:"):]))
            return text, self.must_exist(field, path)
        if scheme in ("http", "https"):
            if not parsed.netloc:
                raise self.error(field, f"{text!r} is not a valid URL")
            return text, None
        if scheme == "runs":
            if not re.fullmatch(r"runs:/[^/]+(/.*)?", text):
                raise self.error(field, f"{text!r} is not a runs:/ URI; expected runs:/<run_id>/<artifact_path>")
            return text, None
        if scheme == "models":
            if not re.fullmatch(r"models:/[^/]+(/[^/]+)?/?", text):
                raise self.error(field, f"{text!r} is not a models:/ URI; expected models:/<name>/<version> or "
                                 "models:/<name>@<alias>")
            return text, None
        if scheme:
            raise self.error(field, f"{text!r}: {scheme}:// is not supported here; use " + SUPPORTED_LOCATIONS)
        path = self.must_exist(field, self.local(text))
        return str(path), path

    def data_type(self, field: str, given: str | None, uri: str, local_path: Path | None) -> str:
        if local_path is not None:
            actual = "uri_file" if local_path.is_file() else "uri_folder"
            if given in FOLDER_TYPES and actual == "uri_folder":
                return given
            if given is not None and given != actual:
                what = "a file" if actual == "uri_file" else "a folder"
                raise self.error(field.rsplit(".", 1)[0] + ".type",
                                 f"{given} does not match {local_path}, which is {what}; use type: {actual}")
            return actual
        if uri.startswith(("http://", "https://")) and not is_storage_uri(uri, self.datastores()):
            if given in FOLDER_TYPES:
                raise self.error(field.rsplit(".", 1)[0] + ".type",
                                 "a web server cannot list a folder, so an http(s) URL names one file: use type: "
                                 "uri_file, or pass the folder from a blob container (https://<account>.blob.core."
                                 "windows.net/<container>/<folder>, wasbs://) or a datastore (azureml://datastores/"
                                 "<store>/paths/<folder>)")
            return "uri_file"
        return given or "uri_folder"

    def storage_or_asset(self, field: str, text: str) -> str:
        """A datastore / blob URI (checked for shape here, looked up when the job starts), a data asset
        reference, or, for model inputs, ``azureml:<model>:<version>`` -> ``models:/<model>/<version>``."""
        from mlflow_workspace_plugin.assets.store import parse_reference
        from mlflow_workspace_plugin.store.datastores import DatastoreError, check_shape

        if text.startswith("azureml:") and not text.startswith("azureml://"):
            if parse_reference(text) is None:
                raise self.error(field, f"{text!r} is not an asset reference; expected azureml:<name>:<version> "
                                 "or azureml:<name>@latest")
            return text
        if text.startswith("azureml://") and "/datastores/" not in text:
            if parse_reference(text) is not None:
                return text
            raise self.error(field, f"{text!r}: only azureml://datastores/<store>/paths/<path> and data asset "
                             "URIs are supported here; use " + SUPPORTED_LOCATIONS)
        try:
            check_shape(text)
        except DatastoreError as error:
            raise self.error(field, error.message) from None
        return text

    def datastores(self) -> dict:
        """The current workspace's datastores (an http URL under a blob datastore is listable)."""
        try:
            from mlflow_workspace_plugin.store.datastores import workspace_datastores

            return workspace_datastores()
        except Exception:  # a broken config is reported where the job starts
            return {}

    def output(self, name: str, value: OutputSection | None) -> JobOutput:
        self.check_io_name("outputs", name)
        if value is None:
            return JobOutput(name=name)
        field = f"outputs.{name}"
        if value.path is not None:
            if not value.path.startswith("azureml://datastores/"):
                raise self.error(f"{field}.path", f"{value.path!r}: outputs go to azureml://datastores/<store>/paths/"
                                 "<path> (or leave path out: the run's outputs/<name>/ artifacts)")
            self.storage_or_asset(f"{field}.path", value.path)
        model_name = value.name if value.type in MODEL_TYPES else None
        if model_name is not None and not NAME_PATTERN.fullmatch(model_name):
            raise self.error(f"{field}.name", f"{model_name!r} is not a valid model name; allowed: letters, "
                             "digits, - and _")
        return JobOutput(name=name, type=value.type, mode=value.mode, description=value.description,
                         path=value.path, model_name=model_name,
                         model_version=None if value.version is None else str(value.version))

    def check_io_name(self, kind: str, name: str) -> None:
        if not IO_NAME_PATTERN.fullmatch(name):
            raise self.error(
                f"{kind}.{name}", f"{name!r} is not a valid name; allowed: letters, digits and _ (no leading digit)"
            )

    def check_placeholders(self, command: str, inputs: dict, outputs: dict, search_space: Collection[str] | None):
        declared = {"inputs": inputs, "outputs": outputs, "search_space": search_space}
        for placeholder in find_placeholders(command):
            names = declared[placeholder.kind]
            if names is None:
                raise self.error(
                    "command", f"{placeholder.text}: search_space placeholders are only allowed in a sweep job's trial"
                )
            if placeholder.name not in names:
                raise self.error(
                    "command",
                    f"{placeholder.text} names no declared {placeholder.kind} entry"
                    f"{did_you_mean(placeholder.name, names)}; declared: {allowed_list(sorted(names))}",
                )
            entry = inputs.get(placeholder.name) if placeholder.kind == "inputs" else None
            if entry is not None and not entry.present and not placeholder.optional_block:
                raise self.error(
                    "command",
                    f"{placeholder.text}: inputs.{placeholder.name} has no value, so it can only be used inside an "
                    "optional block $[[ ... ]] (or give it a value)",
                )

    def ignored(self, section: CommandJobSection) -> tuple[str, ...]:
        ignored = [key for key in IGNORED_TOP_LEVEL if getattr(section, key) is not None]
        if section.resources is not None:
            ignored += ["resources.shm_size"] if section.resources.shm_size else []
            ignored += [f"resources.properties.{key}" for key in section.resources.properties or {}
                        if key not in SHAPE_KEYS]
        if isinstance(section.environment, EnvironmentSection) and section.environment.os_type:
            ignored.append("environment.os_type")
        return tuple(self._full(field) for field in ignored)

    # --- paths -----------------------------------------------------------------------------------------

    def local(self, text: str) -> Path:
        return (self.base / Path(text).expanduser()).resolve()

    def must_exist(self, field: str, path: Path) -> Path:
        if not path.exists():
            raise self.error(field, f"{path} does not exist (relative paths start at the YAML file's folder)")
        return path

    def existing_file(self, field: str, text: str) -> Path:
        path = self.must_exist(field, self.local(text))
        if not path.is_file():
            raise self.error(field, f"{path} is a folder, not a file")
        return path

    def _full(self, field: str) -> str:
        return ".".join(part for part in (self.prefix, field) if part)


def registered_model_uri(reference: str) -> str:
    """``azureml:<model>:<version>`` / ``azureml:<model>@latest`` -> ``models:/<model>/<version|latest>``."""
    from mlflow_workspace_plugin.assets.store import parse_reference

    ref = parse_reference(reference)
    return f"models:/{ref.name}/{ref.version or ref.label}"


def scalar_text(value: bool | int | float | str) -> str:
    """How a YAML scalar becomes text (as azure-ai-ml does: ``str(value)``, so ``true`` -> ``True``)."""
    return str(value)


def _texts(values: dict | None) -> dict[str, str]:
    return {key: scalar_text(value) for key, value in (values or {}).items()}
