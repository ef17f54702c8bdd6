"""The asset store on a local workspace: versions, @latest, archive, files, hostile names and links."""

from __future__ import annotations

import os

import pytest

from mlflow_workspace_plugin.assets.store import AssetError, AssetRef, AssetStore, parse_reference


@pytest.fixture
def store(local_tracking) -> AssetStore:
    return AssetStore(local_tracking)


def test_versions_latest_and_archive(store, tmp_path):
    first = store.create("data", "iris", {"type": "uri_file", "path": "a.csv"})
    second = store.create("data", "iris", {"type": "uri_file", "path": "b.csv"}, description="second")
    named = store.create("data", "iris", {"type": "uri_file", "path": "c.csv"}, version="v-c")
    assert (first.version, second.version, named.version) == ("1", "2", "v-c")
    assert store.get("data", "iris").version == "v-c"
    assert store.get("data", "iris", "1").spec == {"type": "uri_file", "path": "a.csv"}
    assert store.resolve("data", "azureml:iris:2").description == "second"
    store.set_archived("data", "iris", "v-c")
    assert store.resolve("data", "azureml:iris@latest").version == "2"
    assert [v.version for v in store.list("data", "iris")] == ["2", "1"]
    assert store.get("data", "iris", "v-c").archived  # still resolves by version
    assert store.create("data", "iris", {}).version == "3"
    assert store.list("environment") == []  # kinds do not mix


def test_missing_and_duplicate_versions_name_what_exists(store):
    store.create("data", "iris", {}, version="1")
    with pytest.raises(AssetError, match=r"already exists"):
        store.create("data", "iris", {}, version="1")
    with pytest.raises(AssetError, match=r"its versions: 1"):
        store.get("data", "iris", "7")
    with pytest.raises(AssetError, match=r"data assets there: iris"):
        store.get("data", "irsi")
    with pytest.raises(AssetError, match=r"names a component asset"):
        store.resolve("data", "azureml://locations/x/workspaces/w/components/iris/versions/1")


@pytest.mark.parametrize("bad", ["../etc", "a'b", "$(touch pwned)", "", "x" * 300, "a b", "-lead"])
def test_hostile_names_are_refused_before_anything_is_stored(store, bad):
    with pytest.raises(AssetError, match="Invalid asset name"):
        store.create("data", bad, {})
    assert store.list("data", include_archived=True) == []


def test_files_are_stored_and_links_out_refused(store, tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("x")
    (folder / "inside").symlink_to(folder / "sub" / "x.txt")
    asset = store.create("data", "ok", {"type": "uri_folder"}, files=folder)
    got = store.download_files(asset, tmp_path / "dl")
    assert (got / "sub" / "x.txt").read_text() == "x"

    (folder / "secret").symlink_to("/etc/passwd")
    with pytest.raises(AssetError, match="outside"):
        store.create("data", "leaky", {}, files=folder)
    assert store.list("data", "leaky", include_archived=True) == []
    os.unlink(folder / "secret")


def test_references():
    assert parse_reference("azureml:iris:3") == AssetRef("iris", "3")
    assert parse_reference("azureml:iris@latest") == AssetRef("iris", None, "latest")
    assert parse_reference("azureml://locations/l/workspaces/w/data/iris/versions/2") == AssetRef(
        "iris", "2", "latest", "data")
    assert parse_reference("azureml://datastores/workspaceblobstore/paths/x.csv") is None
    assert parse_reference("azureml://registries/azureml/environments/sklearn-1.5/labels/latest") is None
    assert parse_reference("https://example.com/x") is None
