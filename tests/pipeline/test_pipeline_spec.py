"""Pipeline files are checked before anything runs: one error naming the file and the field."""

from __future__ import annotations

import pytest
import yaml
from pipeline_files import step, write_pipeline

from mlflow_workspace_plugin.jobs.errors import JobSpecError
from mlflow_workspace_plugin.jobs.pipeline import Upstream, load_pipeline


def test_linear_pipeline_loads_with_its_graph(pipeline_dir):
    path = write_pipeline(pipeline_dir, {"a": step("A"), "b": step("B", "a"), "c": step("C", "b")},
                          settings={"default_compute": "local", "default_datestore": "workspaceblobstore"})
    spec = load_pipeline(path)
    assert spec.order() == ["a", "b", "c"]
    assert spec.steps["b"].values["inp"] == Upstream("a", "out")
    assert spec.steps["a"].values["inp"] is None  # optional, left out
    assert spec.steps["c"].job_fields["compute"] == "local"
    assert any("default_datestore" in w for w in spec.warnings)  # kept with a warning, never an error
    assert spec.graph()["steps"]["c"]["depends_on"] == ["b"]


@pytest.mark.parametrize("jobs, field, message", [
    ({"a": step("A"), "b": step("B", "aa")}, "jobs.b.inputs.inp", "no step named 'aa' (did you mean 'a'?)"),
    ({"a": step("A"), "b": {**step("B"), "inputs": {"inp": "${{parent.jobs.a.outputs.outt}}"}}},
     "jobs.b.inputs.inp", "has no output 'outt' (did you mean 'out'?)"),
    ({"a": step("A", "c"), "b": step("B", "a"), "c": step("C", "b")}, "jobs", "cycle: a -> c -> b -> a"),
    ({"a": step("A"), "b": {**step("B"), "inputs": {"sleep": "${{parent.jobs.a.outputs.out}}"}}},
     "jobs.b.inputs.sleep", "type mismatch"),
    ({"a": {**step("A"), "inputs": {"txet": "x"}}}, "jobs.a.inputs.txet", "did you mean 'text'?"),
    ({"a": {**step("A"), "inputs": {"sleep": "slow"}}}, "jobs.a.inputs.sleep", "not of type number"),
    ({"a": {**step("A"), "inputs": {"inp": "${{parent.inputs.nope}}"}}}, "jobs.a.inputs.inp", "no input 'nope'"),
    ({"a": {**step("A"), "component": "./missing.yml"}}, "jobs.a.component", "is not a component file"),
])
def test_mistakes_name_the_field(pipeline_dir, jobs, field, message):
    path = write_pipeline(pipeline_dir, jobs)
    with pytest.raises(JobSpecError) as caught:
        load_pipeline(path)
    assert f"{path}: {field}: " in caught.value.message
    assert message in caught.value.message


def test_required_input_left_unbound(pipeline_dir):
    component = yaml.safe_load((pipeline_dir / "step.yml").read_text())
    component["inputs"]["text"] = {"type": "string"}
    (pipeline_dir / "step.yml").write_text(yaml.safe_dump(component))
    path = write_pipeline(pipeline_dir, {"a": {"component": "./step.yml"}})
    with pytest.raises(JobSpecError, match=r"jobs.a.inputs.text: required input of component 'step' is not bound"):
        load_pipeline(path)


def test_set_overrides_a_step_input(pipeline_dir):
    path = write_pipeline(pipeline_dir, {"a": step("A")})
    assert load_pipeline(path, ["jobs.a.inputs.text=changed"]).steps["a"].values["text"] == "changed"
