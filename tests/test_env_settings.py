"""Numeric environment settings: defaults, accepted values, errors naming the variable."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.capture.snapshot import collect_snapshot
from mlflow_workspace_plugin.env_settings import env_number
from mlflow_workspace_plugin.reliable import settings


def test_default_and_values(monkeypatch):
    monkeypatch.delenv("X_SETTING", raising=False)
    assert env_number("X_SETTING", 7.5) == 7.5
    monkeypatch.setenv("X_SETTING", " 0 ")
    assert env_number("X_SETTING", 7.5) == 0
    monkeypatch.setenv("X_SETTING", "2.5")
    assert env_number("X_SETTING", 7.5, allow_zero=False) == 2.5


@pytest.mark.parametrize(("raw", "allow_zero", "allowed"),
                         [("abc", True, ">= 0"), ("-1", True, ">= 0"), ("nan", True, ">= 0"),
                          ("inf", True, ">= 0"), ("0", False, "> 0")])
def test_bad_values_name_variable_and_rule(monkeypatch, raw, allow_zero, allowed):
    monkeypatch.setenv("X_SETTING", raw)
    with pytest.raises(MlflowException, match=rf"X_SETTING='{raw}' is not allowed: use a number {allowed}"):
        env_number("X_SETTING", 1.0, allow_zero=allow_zero)


def test_users_of_the_helper(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_WORKSPACE_SNAPSHOT_MAX_MB", "0")
    with pytest.raises(MlflowException, match="MLFLOW_WORKSPACE_SNAPSHOT_MAX_MB='0' is not allowed"):
        collect_snapshot(tmp_path)
    monkeypatch.setenv("MLFLOW_WORKSPACE_FLUSH_TIMEOUT", "soon")
    with pytest.raises(MlflowException, match="MLFLOW_WORKSPACE_FLUSH_TIMEOUT='soon'"):
        settings.flush_timeout()
