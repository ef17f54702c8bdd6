"""Datastore config, URI resolution and local datastores (no server needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_file

from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.jobs import DataInput
from mlflow_workspace_plugin.jobs.errors import JobInputError
from mlflow_workspace_plugin.jobs.inputs import materialize_input
from mlflow_workspace_plugin.store.datastores import (
    DatastoreError,
    check_shape,
    resolve,
    safe_join,
    workspace_datastores,
)
from mlflow_workspace_plugin.workspace import Workspace


def data_input(uri: str, *, mode: str = "ro_mount", type: str = "uri_file") -> DataInput:
    return DataInput(name="data", type=type, uri=uri, mode=mode)


def test_config_spelling_and_defaults(write_config, tmp_path):
    write_config({
        "lake": {"type": "azure_data_lake_gen2", "account_name": "acct", "filesystem": "lakefs",
                 "credentials": {"account_key_env": "LAKE_KEY"}},
        "raw": {"type": "azure_blob", "account_name": "acct", "container_name": "raw", "protocol": "https",
                "endpoint": "core.chinacloudapi.cn"},
        "emu": {"type": "azure_blob", "account_name": "devstoreaccount1", "container_name": "cont",
                "endpoint": "http://127.0.0.1:10000/devstoreaccount1", "credentials": {"anonymous": True}},
        "files": {"type": "local", "path": "shared"},
        "web": {"type": "http", "url": "https://example.org/data/"},
    })
    stores = workspace_datastores()
    assert stores["lake"].account_url == "https://acct.blob.core.windows.net"  # ADLS Gen2 through its Blob endpoint
    assert stores["lake"].credentials.kind == "key" and stores["lake"].credentials.env == "LAKE_KEY"
    assert stores["raw"].account_url == "https://acct.blob.core.chinacloudapi.cn"
    assert stores["raw"].credentials.kind == "identity"  # no credentials: azure-identity
    assert stores["emu"].container_url == "http://127.0.0.1:10000/devstoreaccount1/cont"
    assert stores["files"].path == (tmp_path / "ws" / "shared").resolve()
    assert stores["web"].url == "https://example.org/data"
    assert stores["workspaceblobstore"].path == tmp_path / "ws" / "store" / "datastores" / "workspaceblobstore"


BAD_CONFIGS = [
    ({"x": {"type": "s3"}}, "field 'datastores.x.type' is 's3'; allowed: local, http, azure_blob, azure_data_lake_gen2"),
    ({"x": {"type": "azure_blob", "account_name": "acct", "container_name": "c12", "sas_token": "sv=1&sig=SECRET"}},
     "field 'datastores.x.sas_token' holds a secret: never write it in the config"),
    ({"x": {"type": "azure_blob", "account_name": "acct", "container_name": "c12",
            "credentials": {"account_key": "SECRETKEY"}}},
     "field 'datastores.x.credentials.account_key' holds a secret"),
    ({"x": {"type": "azure_blob", "account_name": "acct", "container_name": "c12",
            "credentials": {"sas_token_env": "$(touch pwned)"}}},
     "must name an environment variable"),
    ({"x": {"type": "azure_blob", "account_name": "Bad'Name", "container_name": "c12"}},
     "\"Bad'Name\" is not a storage account name"),
    ({"x": {"type": "local"}}, "field 'datastores.x.path' is missing"),
    ({"x": {"type": "http", "url": "ftp://h/x"}}, "is not an http(s) URL"),
    ({"bad name": {"type": "local", "path": "."}}, "field 'datastores.bad name' has an invalid name"),
    ({"x": {"type": "local", "path": ".", "container_name": "c"}}, "'datastores.x.container_name' is not recognised"),
    ([], "field 'datastores' must be an object"),
]


@pytest.mark.parametrize(("datastores", "message"), BAD_CONFIGS)
def test_bad_config_is_one_error_naming_the_field(write_config, datastores, message):
    config = write_config(datastores)
    with pytest.raises(WorkspaceConfigError) as error:
        Workspace.from_config()
    assert message in error.value.message
    assert "SECRET" not in error.value.message and str(config) in error.value.message


def test_uris_resolve_through_datastores(write_config):
    write_config({"raw": {"type": "azure_blob", "account_name": "acct", "container_name": "raw"},
                  "lake": {"type": "azure_data_lake_gen2", "account_name": "acct", "filesystem": "lake"}})
    stores = workspace_datastores()
    cases = {
        "azureml://datastores/raw/paths/a/b.csv": ("raw", "a/b.csv"),
        "azureml://subscriptions/s/resourcegroups/rg/workspaces/w/datastores/raw/paths/a/": ("raw", "a"),
        "wasbs://raw@acct.blob.core.windows.net/a/b.csv": ("raw", "a/b.csv"),
        "abfss://lake@acct.dfs.core.windows.net/x/y": ("lake", "x/y"),
        "https://acct.blob.core.windows.net/raw/a%20b.csv": ("raw", "a b.csv"),
        "https://acct.dfs.core.windows.net/lake/": ("lake", ""),
    }
    for uri, (store, path) in cases.items():
        location = resolve(uri, stores)
        assert (location.store.name, location.path) == (store, path), uri
    public = resolve("wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv", stores)
    assert public.store.credentials.kind == "anonymous"  # no datastore for that account: public read
    assert public.store.container_url == "https://azuremlexamples.blob.core.windows.net/datasets"


@pytest.mark.parametrize(("uri", "message"), [
    ("azureml://datastores/raw/paths/a/../../etc/passwd", "'..' and '.' are not allowed in a datastore path"),
    ("wasbs://raw@acct.blob.core.windows.net/a/./b", "'..' and '.' are not allowed"),
    ("https://acct.blob.core.windows.net/raw/a/%2e%2e/b", "'..' and '.' are not allowed"),
    ("azureml://datastores/nope/paths/x", "no datastore named 'nope' in the workspace config (configured: raw,"),
    ("azureml://datastores/raw/nopaths", "is not a datastore URI; expected azureml://datastores/<store>/paths/<path>"),
    ("wasbs://missing-at-sign/x", "wasbs://missing-at-sign/x is not a valid storage URI; expected"),
    ("wasbs://raw@acct.blob.core.windows.net/a\\b", "a control character or a backslash"),
    ("wasbs://Bad$(x)@acct.blob.core.windows.net/a", "is not a valid storage account / container name"),
])
def test_bad_storage_uri_is_one_error_naming_it(write_config, uri, message):
    write_config({"raw": {"type": "azure_blob", "account_name": "acct", "container_name": "raw"}})
    with pytest.raises(DatastoreError) as error:
        resolve(uri, workspace_datastores())
    assert message in error.value.message
    with pytest.raises(JobInputError) as job_error:
        materialize_input(data_input(uri, mode="download"), "/nonexistent-private")
    assert message in job_error.value.message and "inputs.data" in job_error.value.message


def test_shape_checks_and_stored_names_never_escape(tmp_path):
    check_shape("azureml://datastores/workspaceblobstore/paths/x.csv")
    with pytest.raises(DatastoreError, match="not a valid storage URI"):
        check_shape("abfss://x")
    assert safe_join(tmp_path, "a/b.csv", "u") == tmp_path / "a" / "b.csv"
    for name in ("../evil", "a/../../evil", "/etc/passwd", "a\\..\\b", ""):
        with pytest.raises(DatastoreError, match="would be written outside the input folder"):
            safe_join(tmp_path, name, "u")


def test_local_datastore_in_every_mode(write_config, tmp_path):
    shared = tmp_path / "ws" / "shared"
    write_file(shared / "iris" / "iris.csv", "a,b\n1,2\n")
    write_file(shared / "iris" / "more" / "x.txt", "x")
    write_config({"files": {"type": "local", "path": "shared"}})
    private = tmp_path / "private"
    uri = "azureml://datastores/files/paths/iris/iris.csv"
    assert materialize_input(data_input(uri), private) == str(shared / "iris" / "iris.csv")  # ro_mount: no copy
    copied = materialize_input(data_input(uri, mode="download"), private)
    assert copied == str(private / "inputs" / "data" / "iris.csv") and open(copied).read() == "a,b\n1,2\n"
    folder = materialize_input(data_input("azureml://datastores/files/paths/iris", mode="download",
                                          type="uri_folder"), private)
    assert sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*.*")) == [
        "iris.csv", "more/x.txt"]
    assert materialize_input(data_input(uri, mode="direct"), private) == uri
    with pytest.raises(JobInputError, match="does not exist"):
        materialize_input(data_input("azureml://datastores/files/paths/missing.csv"), private)


def test_workspaceblobstore_is_a_folder_of_the_local_workspace(isolated_workspace, tmp_path):
    store = isolated_workspace / "datastores" / "workspaceblobstore"
    write_file(store / "data" / "rows.csv", "1\n")
    assert materialize_input(data_input("azureml://datastores/workspaceblobstore/paths/data/rows.csv"),
                             tmp_path) == str(store / "data" / "rows.csv")


def test_symlinks_out_of_a_local_datastore_are_refused(write_config, tmp_path):
    shared = tmp_path / "ws" / "shared"
    secret = write_file(tmp_path / "outside" / "secret.txt", "top secret")
    write_file(shared / "ok" / "a.txt", "a")
    os.symlink(secret, shared / "link.txt")
    (shared / "ok" / "inner").symlink_to(tmp_path / "outside", target_is_directory=True)
    write_config({"files": {"type": "local", "path": "shared"}})
    for uri, kind in (("azureml://datastores/files/paths/link.txt", "uri_file"),
                      ("azureml://datastores/files/paths/ok", "uri_folder")):
        for mode in ("ro_mount", "download"):
            with pytest.raises(JobInputError) as error:
                materialize_input(data_input(uri, mode=mode, type=kind), tmp_path / "private")
            assert "outside" in error.value.message and "links out of a datastore folder" in error.value.message
    assert not (tmp_path / "private" / "inputs" / "data" / "inner").exists()


def test_http_datastore_reads_files_and_explains_folders(write_config, http_files, tmp_path):
    base, _ = http_files
    write_config({"web": {"type": "http", "url": base}})
    got = materialize_input(data_input("azureml://datastores/web/paths/iris.csv"), tmp_path)
    assert open(got).read() == "a,b\n1,2\n"
    with pytest.raises(JobInputError) as error:
        materialize_input(data_input("azureml://datastores/web/paths/", type="uri_folder"), tmp_path)
    assert "cannot list a folder; use type: uri_file, or keep the folder in a local or blob datastore" in (
        error.value.message)



def test_redaction_keeps_the_container_of_wasbs_and_abfss_uris():
    from mlflow_workspace_plugin.uri import redact

    assert redact("wasbs://datasets@acct.blob.core.windows.net/a.csv?sv=1&sig=S3CRET") == (
        "wasbs://datasets@acct.blob.core.windows.net/a.csv?sv=1&sig=***")
    assert redact("abfss://fs@acct.dfs.core.windows.net/p") == "abfss://fs@acct.dfs.core.windows.net/p"
    assert redact("https://user:S3CRET@host/x") == "https://***@host/x"


def test_missing_credential_variable_is_named(write_config, tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_SAS", raising=False)
    write_config({"raw": {"type": "azure_blob", "account_name": "acct", "container_name": "raw",
                          "endpoint": "http://127.0.0.1:9/acct", "credentials": {"sas_token_env": "NOT_SET_SAS"}}})
    for kind in ("uri_file", "uri_folder"):
        with pytest.raises(JobInputError) as error:
            materialize_input(data_input("azureml://datastores/raw/paths/a.csv", type=kind), tmp_path)
        assert "Datastore 'raw' takes its SAS token from $NOT_SET_SAS, which is not set" in error.value.message
