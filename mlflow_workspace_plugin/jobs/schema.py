"""The raw shape of a command-job YAML, both spellings at once (pydantic v2, strict, no unknown keys).

This layer checks keys and types only; :mod:`normalize` turns the result into a :class:`CommandJob`
(resolving paths, translating preview fields, checking placeholders). :func:`validate_raw` converts
pydantic's errors into one :class:`JobSpecError` whose lines read ``file: field.path: problem``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mlflow_workspace_plugin.jobs.errors import JobSpecError, allowed_list, did_you_mean, located

MODEL_TYPES = ("mlflow_model", "custom_model", "triton_model")
INPUT_TYPES = ("uri_file", "uri_folder", "mltable", *MODEL_TYPES)
OUTPUT_TYPES = ("uri_folder", "uri_file", "mltable", *MODEL_TYPES)
INPUT_MODES = ("ro_mount", "mount", "download", "direct")
OUTPUT_MODES = ("rw_mount", "upload")
DISTRIBUTION_TYPES = ("pytorch", "tensorflow", "mpi")
JOB_TYPES = ("command", "command_job")
MAX_REPORTED_PROBLEMS = 5
MAX_TIMEOUT_SECONDS = 31_536_000  # limits.timeout: at most 365 days (a timer further out overflows the OS's)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# union branches: pydantic puts them in error locations; they are hidden from the field paths we show
_TAGS = ("<text>", "<mapping>", "<literal>", "<data>", "<empty>", "<pytorch>", "<tensorflow>", "<mpi>")


def problem(message: str, at: str | None = None) -> PydanticCustomError:
    """A validation error with our own wording; ``at`` is a key below the current location."""
    return PydanticCustomError("job_spec", "{message}", {"message": message, "at": at})


class Section(BaseModel):
    """A YAML mapping: strict types, unknown keys rejected with the closest known key suggested."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [field.alias or name for name, field in cls.model_fields.items()]
            for key in data:
                if key not in known:
                    raise problem(
                        f"unknown key {str(key)!r}{did_you_mean(str(key), known)}; allowed: {allowed_list(known)}",
                        at=str(key),
                    )
        return data


def _text_or_mapping(value: Any) -> str | None:
    if isinstance(value, dict):
        return "<mapping>"
    return "<text>" if isinstance(value, str) else None


def text_or(model: type[Section], what: str) -> Any:
    """A field written either as a string or as the mapping ``model``."""
    return Annotated[
        Annotated[StrictStr, Tag("<text>")] | Annotated[model, Tag("<mapping>")],
        Discriminator(_text_or_mapping, custom_error_type="job_spec_union", custom_error_message=what),
    ]


def _scalar(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    raise problem(f"expected a text, number or true/false, got {_kind(value)}")


ScalarValue = Annotated[bool | int | float | str, PlainValidator(_scalar)]


def _timeout(value: int) -> int:
    if value > MAX_TIMEOUT_SECONDS:
        raise problem(f"must be <= {MAX_TIMEOUT_SECONDS} seconds (365 days), got {_kind(value)}; "
                      f"allowed: 1 to {MAX_TIMEOUT_SECONDS}")
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise problem(f"{_kind(value)} is not an environment variable name; allowed: letters, digits and _, "
                      "not starting with a digit (no '=', spaces or NUL)")
    return value


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\0" in value:
        raise problem("holds a NUL character (\\0), which no process can receive; remove it")
    return value


TimeoutSeconds = Annotated[int, Field(gt=0), AfterValidator(_timeout)]
EnvName = Annotated[StrictStr, AfterValidator(_env_name)]
EnvValue = Annotated[ScalarValue, AfterValidator(_no_nul)]
CommandText = Annotated[StrictStr, AfterValidator(_no_nul)]


class Code(Section):
    local_path: StrictStr


class Docker(Section):  # preview: environment.docker
    image: StrictStr | None = None
    build: dict[str, Any] | None = None


class Build(Section):  # today: environment.build
    path: StrictStr
    dockerfile_path: StrictStr | None = None


class EnvironmentSection(Section):
    name: StrictStr | None = None
    version: StrictStr | StrictInt | None = None
    description: StrictStr | None = None
    image: StrictStr | None = None
    conda_file: StrictStr | dict[str, Any] | None = None
    docker: Docker | None = None
    build: Build | None = None
    os_type: StrictStr | None = None
    tags: dict[str, Any] | None = None


class Compute(Section):  # preview: compute.target / compute.instance_count
    target: StrictStr | None = None
    instance_count: int | None = Field(None, ge=1)


class Resources(Section):
    instance_count: int | None = Field(None, ge=1)
    instance_type: StrictStr | None = None
    shm_size: StrictStr | None = None
    properties: dict[str, Any] | None = None  # here: cpus / gpus / memory_gb / resources, a run's own ask


class Limits(Section):
    timeout: TimeoutSeconds


class PyTorch(Section):
    type: StrictStr
    process_count_per_instance: int | None = Field(None, ge=1)
    process_count: int | None = Field(None, ge=1)  # preview: total processes


class TensorFlow(Section):
    type: StrictStr
    worker_count: int | None = Field(None, ge=1)
    parameter_server_count: int = Field(0, ge=0)


class Mpi(Section):
    type: StrictStr
    process_count_per_instance: int | None = Field(None, ge=1)


def _distribution_type(value: Any) -> str | None:
    return f"<{str(value.get('type')).lower()}>" if isinstance(value, dict) else None


DistributionSection = Annotated[
    Annotated[PyTorch, Tag("<pytorch>")] | Annotated[TensorFlow, Tag("<tensorflow>")] | Annotated[Mpi, Tag("<mpi>")],
    Discriminator(
        _distribution_type,
        custom_error_type="job_spec_union",
        custom_error_message="expected a mapping with type: pytorch, tensorflow or mpi",
    ),
]


class PreviewData(Section):  # preview: inputs.x.data
    path: StrictStr | None = None
    local_path: StrictStr | None = None


PreviewDataField = text_or(PreviewData, "expected an azureml:<name>:<version> reference or a mapping with path")


class DataInputSection(Section):
    type: StrictStr | None = None
    path: StrictStr | None = None
    data: PreviewDataField | None = None
    mode: StrictStr | None = None
    optional: StrictBool = False
    description: StrictStr | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and value not in INPUT_TYPES:
            raise problem(
                f"type {value!r} is not supported here; allowed: {allowed_list(INPUT_TYPES)} "
                "(literal inputs are written directly, e.g. `learning_rate: 0.1`)"
            )
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str | None) -> str | None:
        if value is not None and value not in INPUT_MODES:
            raise problem(f"mode {value!r} is not allowed{did_you_mean(value, INPUT_MODES)}; "
                          f"allowed: {allowed_list(INPUT_MODES)}")
        return value


def _input_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "<data>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return "<literal>"
    return None


InputSection = Annotated[
    Annotated[ScalarValue | None, Tag("<literal>")] | Annotated[DataInputSection, Tag("<data>")],
    Discriminator(
        _input_kind,
        custom_error_type="job_spec_union",
        custom_error_message="expected a literal (number, string, true/false) or a mapping with type, path and mode",
    ),
]


class OutputSection(Section):
    type: StrictStr = "uri_folder"
    mode: StrictStr = "rw_mount"
    description: StrictStr | None = None
    path: StrictStr | None = None  # azureml://datastores/<store>/paths/<p>: uploaded there when the job ends
    name: StrictStr | None = None  # model outputs: register under this name (data outputs: ignored)
    version: StrictStr | StrictInt | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in OUTPUT_TYPES:
            raise problem(f"type {value!r} is not supported for outputs here; allowed: {allowed_list(OUTPUT_TYPES)}")
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in OUTPUT_MODES:
            raise problem(f"mode {value!r} is not allowed{did_you_mean(value, OUTPUT_MODES)}; "
                          f"allowed: {allowed_list(OUTPUT_MODES)}")
        return value


def _output_kind(value: Any) -> str | None:
    if value is None:
        return "<empty>"
    return "<mapping>" if isinstance(value, dict) else None


OutputEntry = Annotated[
    Annotated[None, Tag("<empty>")] | Annotated[OutputSection, Tag("<mapping>")],
    Discriminator(
        _output_kind,
        custom_error_type="job_spec_union",
        custom_error_message="expected a mapping with type and mode (or nothing, for a uri_folder in rw_mount)",
    ),
]

Scalars = dict[StrictStr, ScalarValue]
CodeField = text_or(Code, "expected a folder path (code: ./src) or a mapping with local_path")
EnvironmentField = text_or(
    EnvironmentSection, "expected an azureml:<name>:<version> reference or a mapping with image/conda_file"
)
ComputeField = text_or(Compute, "expected a compute target name (local, azureml:<name>) or a mapping with target")


class CommandJobSection(Section):
    """The top level of a command-job YAML (or a sweep's ``trial``)."""

    schema_: StrictStr | None = Field(None, alias="$schema")
    type: StrictStr | None = None
    name: StrictStr | None = None
    display_name: StrictStr | None = None
    experiment_name: StrictStr | None = None
    description: StrictStr | None = None
    tags: Scalars | None = None
    properties: Scalars | None = None
    code: CodeField | None = None
    command: CommandText
    environment_variables: dict[EnvName, EnvValue] | None = None
    environment: EnvironmentField | None = None
    compute: ComputeField | None = None
    resources: Resources | None = None
    distribution: DistributionSection | None = None
    limits: Limits | None = None
    inputs: dict[StrictStr, InputSection] | None = None
    outputs: dict[StrictStr, OutputEntry] | None = None
    services: Any = None
    identity: Any = None
    queue_settings: Any = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and value not in JOB_TYPES:
            raise problem(f"type {value!r} is not a command job; allowed: command")
        return value

    @field_validator("distribution", mode="before")
    @classmethod
    def _distribution(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if "type" not in value:
                raise problem(f"missing; allowed: {allowed_list(DISTRIBUTION_TYPES)}", at="type")
            kind = str(value["type"]).lower()
            if kind not in DISTRIBUTION_TYPES:
                raise problem(
                    f"{value['type']!r} is not supported here{did_you_mean(kind, DISTRIBUTION_TYPES)}; "
                    f"allowed: {allowed_list(DISTRIBUTION_TYPES)}",
                    at="type",
                )
            value = {**value, "type": kind}
        return value


OTHER_JOB_TYPES = {
    "pipeline": "a graph of steps under `jobs:`",  # jobs.pipeline reads these; not the command-job loader
    "automl": "automated ML",
    "spark": "Spark jobs",
    "parallel": "parallel (batch) steps of a pipeline",
    "import": "data import jobs",
}


def check_job_type(raw: Any, source_file: Path | str, field_prefix: str = "") -> None:
    """A known Azure ML job type other than command (e.g. ``type: pipeline``) gets one line saying
    so, before its keys are checked as a command job's (which would only say ``unknown key 'jobs'``)."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    if isinstance(kind, str) and kind.lower() in OTHER_JOB_TYPES:
        field = ".".join(part for part in (field_prefix, "type") if part)
        if kind.lower() == "pipeline":
            raise JobSpecError.at(source_file, field,
                                  "'pipeline': a pipeline job (a graph of steps under `jobs:`) is a different job "
                                  "type from a command job: `mlflow-workspace job create -f` runs it, or in Python "
                                  "jobs.pipeline.load_pipeline / run_pipeline")
        raise JobSpecError.at(
            source_file, field,
            f"{kind!r}: {kind.lower()} jobs ({OTHER_JOB_TYPES[kind.lower()]}) are a different job type, which is not "
            "supported here yet; supported: command, sweep, pipeline")


def validate_raw(
    model: type[Section],
    raw: Any,
    *,
    source_file: Path | str,
    field_prefix: str = "",
    overridden: Sequence[tuple[str, str]] = (),
) -> Any:
    """``model.model_validate(raw)``, with every problem phrased as ``file: field.path: problem``.

    ``overridden`` pairs (``field.path``, ``--set`` text) mark values that came from ``--set`` so the
    message says where the bad value came from.
    """
    if not isinstance(raw, dict):
        raise JobSpecError.at(source_file, field_prefix or None, f"expected a mapping of keys, got {_kind(raw)}")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(item, field_prefix, overridden) for item in error.errors()]
        fields = [field for field, _ in lines]
        messages = [located(source_file, field, text) for field, text in lines[:MAX_REPORTED_PROBLEMS]]
        if len(lines) > MAX_REPORTED_PROBLEMS:
            messages.append(f"... and {len(lines) - MAX_REPORTED_PROBLEMS} more problems")
        raise JobSpecError(
            "\n".join(messages), source_file=source_file, field=fields[0] if fields else None
        ) from None


def _describe(item: dict, prefix: str, overridden: Sequence[tuple[str, str]]) -> tuple[str, str]:
    loc = [str(part) for part in item["loc"] if part not in _TAGS]
    ctx = item.get("ctx") or {}
    if item["type"] == "job_spec" and ctx.get("at"):
        loc.append(ctx["at"])
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc.pop()
    field = ".".join(([prefix] if prefix else []) + loc) or "(top level)"
    key_type = is_key and item["type"] != "job_spec"
    text = f"a key must be text, got {_kind(item.get('input'))}" if key_type else _wording(item)
    return field, text + override_note(field, overridden)


def override_note(field: str, overridden: Sequence[tuple[str, str]]) -> str:
    """`` (value from --set a.b=c)`` when ``field`` was set (or set below) by an override, else ``""``."""
    for path, setting in overridden:
        if field == path or field.startswith(path + ".") or path.startswith(field + "."):
            return f" (value from --set {setting})"
    return ""


def _wording(item: dict) -> str:
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    got = f", got {_kind(value)}"
    if kind == "job_spec":
        return ctx["message"]
    if kind == "job_spec_union":
        return item["msg"] + got
    if kind == "missing":
        return "required field is missing"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected an integer" + got
    if kind in ("string_type", "string_sub_type"):
        return "expected a string" + got
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false" + got
    if kind in ("float_type", "float_parsing"):
        return "expected a number" + got
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "expected a mapping of keys" + got
    if kind in ("none_required",):
        return "expected nothing" + got
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}{got}"
    if kind == "extra_forbidden":
        return "unknown key"
    return item["msg"] + got


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"{shown!r} (a string)"
    return type(value).__name__
