"""A real Azure Storage emulator (Azurite's Blob service) on a free loopback port, for blob datastore tests.

The binary comes from ``.azurite/`` (installed there by npm on first use, or by ``.ci/run``) or PATH. Azurite
has no ADLS Gen2 (DFS) endpoint: ``abfss://`` is exercised through the Blob endpoint, as the plugin reads
ADLS Gen2 accounts (multi-protocol access).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import stop_process

from mlflow_workspace_plugin.ports import free_port

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key (public, documented)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    process: subprocess.Popen
    port: int
    folder: Path

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(self.account_url, credential={"account_name": ACCOUNT, "account_key": KEY})

    def container_sas(self, container: str, write: bool = False) -> str:
        from datetime import datetime, timedelta, timezone

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(ACCOUNT, container, account_key=KEY,
                                      permission=ContainerSasPermissions(read=True, list=True, write=write,
                                                                         create=write),
                                      expiry=datetime.now(timezone.utc) + timedelta(hours=2))


def azurite_binary(install: bool = True) -> str | None:
    """``azurite-blob`` from ``.azurite/`` or PATH; with npm there and no binary yet, npm installs it
    into ``.azurite/`` first (so the README's test command needs no extra step)."""
    local = REPO / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if found or not install or shutil.which("npm") is None:
        return found
    from mlflow_workspace_plugin.file_lock import held

    (REPO / ".azurite").mkdir(exist_ok=True)
    with held(REPO / ".azurite" / ".install.lock"):  # two test workers: one install
        if not local.exists():
            subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                            str(REPO / ".azurite"), "azurite"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=600, check=False)
    return str(local) if local.exists() else None


def start_azurite(folder: Path) -> Azurite:
    """Start ``azurite-blob`` in ``folder`` on a free port (its own process group); wait until it answers."""
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("azurite-blob not found: run `npm install --no-save --prefix .azurite azurite` "
                           "(as .ci/run does)")
    port = free_port()
    log = open(folder / "azurite.log", "wb")
    process = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder / "data"),
         "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()  # the child keeps its own descriptor
    azurite = Azurite(process, port, folder)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited: {(folder / 'azurite.log').read_text(errors='replace')[-2000:]}")
        try:
            list(azurite.service().list_containers())
            return azurite
        except Exception:
            time.sleep(0.3)
    stop_process(process)
    raise RuntimeError("azurite did not answer within 60 s")


def stop_azurite(azurite: Azurite) -> None:
    stop_process(azurite.process)
