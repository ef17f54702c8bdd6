"""What a run asks of its compute: a :class:`ResourceShape` (CPUs, GPUs, memory, custom resources).

A shape is written the same way wherever it is given, as an object of these keys (each optional)::

    {"cpus": 4, "gpus": 1, "memory_gb": 16, "resources": {"node_b": 1}}

- a Ray target's ``instance_types`` (``{"Standard_NC6s_v3": {"cpus": 6, "gpus": 1, ...}}``), so an Azure job
  file's ``resources.instance_type`` means that shape, and its ``default_instance_type``;
- a job's own ask, ``resources.properties`` (the keys above), over its instance type's shape;
- a projects run's ``backend_config`` ``INSTANCE_TYPE`` / ``RESOURCES``.

On Ray the shape becomes the job's entrypoint resources (``entrypoint_num_cpus``, ``entrypoint_num_gpus``,
``entrypoint_memory``, ``entrypoint_resources``): Ray starts the job only on a node that has them free
(``CUDA_VISIBLE_DEVICES`` is what Ray assigns), so runs and sweep trials never oversubscribe a node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SHAPE_KEYS = {"cpus": "number of CPUs", "gpus": "number of GPUs", "memory_gb": "memory in GB",
              "resources": "custom Ray resources, {name: amount}"}
_GB = 1024 ** 3
_RESERVED = ("CPU", "GPU", "memory", "object_store_memory")


@dataclass(frozen=True)
class ResourceShape:
    """CPUs, GPUs, memory (GB) and custom resources; None: not asked for."""

    cpus: float | None = None
    gpus: float | None = None
    memory_gb: float | None = None
    custom: tuple[tuple[str, float], ...] = ()

    @classmethod
    def parse(cls, value: Any, where: str, error: Callable[[str], Exception]) -> ResourceShape:
        """The shape written as ``value`` (an object of :data:`SHAPE_KEYS`); ``error(message)`` names ``where``."""
        allowed = ", ".join(f"{key} ({text})" for key, text in SHAPE_KEYS.items())
        if not isinstance(value, Mapping):
            raise error(f"{where} must be an object like {{\"cpus\": 4, \"gpus\": 1}}, got {value!r}; "
                        f"allowed: {allowed}")
        unknown = sorted(set(value) - set(SHAPE_KEYS))
        if unknown:
            raise error(f"{where}.{unknown[0]} is not recognised; allowed: {allowed}")
        numbers = {key: _amount(value[key], f"{where}.{key}", error) for key in ("cpus", "gpus", "memory_gb")
                   if value.get(key) is not None}
        custom = value.get("resources") or {}
        if not isinstance(custom, Mapping):
            raise error(f"{where}.resources must be an object of resource name -> amount, got {custom!r}")
        for name in custom:
            if not isinstance(name, str) or not name.strip() or name in _RESERVED:
                raise error(f"{where}.resources: {name!r} is not a custom resource name (use cpus, gpus, memory_gb "
                            f"for {', '.join(_RESERVED[:3])})")
        pairs = tuple(sorted((name, _amount(amount, f"{where}.resources.{name}", error))
                             for name, amount in custom.items()))
        return cls(custom=pairs, **numbers)

    def over(self, base: ResourceShape | None) -> ResourceShape:
        """This shape, with what it leaves out taken from ``base``."""
        if base is None:
            return self
        return ResourceShape(cpus=_first(self.cpus, base.cpus), gpus=_first(self.gpus, base.gpus),
                             memory_gb=_first(self.memory_gb, base.memory_gb),
                             custom=tuple(sorted({**dict(base.custom), **dict(self.custom)}.items())))

    def times(self, count: int) -> ResourceShape:
        """``count`` of this shape together (instances that share one Ray job)."""
        def scaled(value: float | None) -> float | None:
            return None if value is None else value * count
        return ResourceShape(cpus=scaled(self.cpus), gpus=scaled(self.gpus), memory_gb=scaled(self.memory_gb),
                             custom=tuple((name, amount * count) for name, amount in self.custom))

    @property
    def is_empty(self) -> bool:
        return self.cpus is None and self.gpus is None and self.memory_gb is None and not self.custom

    def ray_resources(self) -> dict[str, float]:
        """The shape in Ray's resource names (``memory`` in bytes)."""
        needs = {"CPU": self.cpus, "GPU": self.gpus,
                 "memory": None if self.memory_gb is None else self.memory_gb * _GB, **dict(self.custom)}
        return {name: amount for name, amount in needs.items() if amount}

    def ray_entrypoint_options(self) -> dict[str, Any]:
        """``JobSubmissionClient.submit_job`` keywords reserving this shape for the job."""
        options: dict[str, Any] = {}
        if self.cpus is not None:
            options["entrypoint_num_cpus"] = self.cpus
        if self.gpus is not None:
            options["entrypoint_num_gpus"] = self.gpus
        if self.memory_gb is not None:
            options["entrypoint_memory"] = int(self.memory_gb * _GB)
        if self.custom:
            options["entrypoint_resources"] = dict(self.custom)
        return options

    def describe(self) -> str:
        return describe_resources(self.ray_resources())

    def fits(self, node: Mapping[str, float]) -> bool:
        """Whether a node with ``node`` (Ray's total resources) could ever run it."""
        return all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in self.ray_resources().items())


def unplaceable(shape: ResourceShape, nodes: Iterable[Mapping[str, float]]) -> str | None:
    """Why no node of ``nodes`` (each Ray's total resources) could run ``shape``; None when one can."""
    nodes = list(nodes)
    if any(shape.fits(node) for node in nodes):
        return None
    offered = "; ".join(describe_resources(node) for node in nodes) or "no alive node"
    return f"no node of the cluster has {shape.describe()}; its nodes have: {offered}"


def describe_resources(resources: Mapping[str, float]) -> str:
    """``{CPU: 4, GPU: 1, memory: 16 GB, node_b: 1}`` (Ray's internal per-node resources left out)."""
    parts = []
    for name, amount in resources.items():
        if name == "object_store_memory" or name.startswith("node:") or name.startswith("accelerator_type"):
            continue
        text = f"{amount / _GB:.3g} GB" if name == "memory" else f"{amount:g}"
        parts.append(f"{name}: {text}")
    return "{" + ", ".join(parts) + "}"


def _amount(value: Any, where: str, error: Callable[[str], Exception]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise error(f"{where} = {value!r} must be a number >= 0")
    return float(value)


def _first(value: float | None, fallback: float | None) -> float | None:
    return fallback if value is None else value
