"""Parse, validate and build ``azureml://`` workspace tracking URIs.

Shape (the managed service's, see seed 000)::

    azureml://<host>[:port]/mlflow/v1.0/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>

The MLflow REST API of that workspace is served under ``/mlflow/v2.0/<same scope>`` for
MLflow >= 2 clients whatever version the URI names; plain http is only used for loopback hosts.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlflow_workspace_plugin.errors import WorkspaceUriError

SCHEME = "azureml"
PROVIDER = "Microsoft.MachineLearningServices"
EXPECTED_SHAPE = (
    "azureml://<host>[:port]/mlflow/v1.0/subscriptions/<subscription_id>/resourceGroups/"
    f"<resource_group>/providers/{PROVIDER}/workspaces/<workspace_name>"
)
_PATH_RE = re.compile(
    r"^/mlflow/(?P<version>v[12]\.0)/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/(?P<provider>[^/]+)/workspaces/(?P<ws>[^/]+)/?$"
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.()-]*$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
REDACTED = "***"
# (wasbs:// and abfss:// put the container before the @, not a secret)
_USERINFO_RE = re.compile(r"(?P<start>^|(?<![A-Za-z0-9+.\-])(?!(?:wasbs?|abfss?)://)[A-Za-z][A-Za-z0-9+.\-]*://)"
                          r"(?P<userinfo>[^/@\s?#'\"]+)@")
_SECRET_QUERY_RE = re.compile(
    r"(?P<name>[?&;][^=&;#\s'\"]*(?:token|sig|signature|key|secret|password|passwd|pwd|credential|auth|code)"
    r"[^=&;#\s'\"]*=)[^&;#\s'\"]*", re.I)


def redact(text: object) -> str:
    """``text`` (a URI, a ``host[:port]``, or a message quoting URIs) with secrets replaced by
    ``***``: the userinfo of every ``scheme://user:password@host`` (and of a leading
    ``user:password@host``), and the values of query parameters named like a secret
    (``token=``, ``sig=``, ``key=``, ``secret=``, ``password=``, ``code=``, ...).
    Use it for every URI a message, log line or exception quotes."""
    out = _USERINFO_RE.sub(lambda m: f"{m['start']}{REDACTED}@", str(text))
    return _SECRET_QUERY_RE.sub(lambda m: f"{m['name']}{REDACTED}", out)


@dataclass(frozen=True)
class WorkspaceScope:
    """Identity of one workspace plus the host serving its MLflow API."""

    host: str  # host or host:port, as it appears in the URI
    subscription_id: str
    resource_group: str
    workspace_name: str

    @property
    def path(self) -> str:
        return (
            f"subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace_name}"
        )

    @property
    def tracking_uri(self) -> str:
        return f"{SCHEME}://{self.host}/mlflow/v1.0/{self.path}"

    @property
    def rest_base_url(self) -> str:
        """Base URL MLflow's REST client appends ``/api/2.0/mlflow/...`` to."""
        scheme = "http" if is_loopback(self.hostname) else "https"
        return f"{scheme}://{self.host}/mlflow/v2.0/{self.path}"

    @property
    def hostname(self) -> str:
        return urlsplit(f"//{self.host}").hostname or ""


def is_loopback(hostname: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def _fail(uri: str, why: str) -> WorkspaceUriError:
    return WorkspaceUriError(f"Invalid workspace URI {redact(uri)!r}: {redact(why)}. Expected {EXPECTED_SHAPE}")


def validate_name(kind: str, value: object) -> str:
    """Check one workspace identity segment; returns it or raises naming the segment."""
    if not isinstance(value, str) or not value.strip():
        raise WorkspaceUriError(f"{kind} must be a non-empty string, got {value!r}")
    if not _NAME_RE.match(value):
        raise WorkspaceUriError(
            f"{kind} {value!r} contains characters that are not allowed "
            "(letters, digits, '_', '.', '-', '(', ')'; must start with a letter or digit)"
        )
    return value


def validate_host(host: object) -> str:
    """Check a ``host[:port]`` string."""
    if not isinstance(host, str) or not host:
        raise WorkspaceUriError(f"host must be a non-empty 'host[:port]' string, got {redact(repr(host))}")
    shown = repr(redact(host))
    if "@" in host:
        raise WorkspaceUriError(f"host {shown} must be 'host' or 'host:port' only (no user name or password: "
                                "credentials come from MLFLOW_TRACKING_TOKEN or an azure-identity credential)")
    try:
        parts = urlsplit(f"//{host}")
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise WorkspaceUriError(f"host {shown} has an invalid port ({redact(exc)}); ports are 1-65535") from None
    name = parts.hostname or ""
    if parts.path or not name:
        raise WorkspaceUriError(f"host {shown} must be 'host' or 'host:port' only")
    if ":" in host and port is None:
        raise WorkspaceUriError(f"host {shown} has an empty port; ports are 1-65535")
    if port == 0:
        raise WorkspaceUriError(f"host {shown} has port 0; ports are 1-65535")
    if not (_HOST_RE.match(name) or _is_ip(name)):
        raise WorkspaceUriError(f"host {shown} is not a valid host name or IP address")
    return host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def parse_workspace_uri(uri: str) -> WorkspaceScope:
    """Parse an ``azureml://`` URI into a :class:`WorkspaceScope`, or raise with the expected shape."""
    if not isinstance(uri, str):
        raise _fail(repr(uri), "not a string")
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise _fail(uri, f"scheme must be '{SCHEME}', got {parts.scheme!r}")
    if parts.query or parts.fragment:
        raise _fail(uri, "query strings and fragments are not allowed")
    if not parts.netloc:
        raise _fail(uri, "the host is missing")
    try:
        host = validate_host(parts.netloc)
    except WorkspaceUriError as exc:
        raise _fail(uri, exc.message) from None
    match = _PATH_RE.match(parts.path)
    if not match:
        raise _fail(uri, f"the path {parts.path or '(empty)'!r} does not have the workspace scope shape")
    if match["provider"] != PROVIDER:
        raise _fail(uri, f"provider must be '{PROVIDER}', got {match['provider']!r}")
    try:
        return WorkspaceScope(
            host=host,
            subscription_id=validate_name("subscription_id", match["sub"]),
            resource_group=validate_name("resource_group", match["rg"]),
            workspace_name=validate_name("workspace_name", match["ws"]),
        )
    except WorkspaceUriError as exc:
        raise _fail(uri, exc.message) from None
