"""Model registry through the unmodified mlflow client: registered models, versions, stages,
tags, aliases, search, and registering/loading a logged pyfunc model."""

from __future__ import annotations

import time

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

import e2e_util as u


class Tripler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input * 3


@pytest.fixture(scope="module")
def logged(server):
    """A run with a logged pyfunc model 'model': (run_id, model_id, run artifact_uri)."""
    prev = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        c = mlflow.MlflowClient(tracking_uri=server.url)
        exp_id = c.create_experiment(f"e2e-reg-{time.time_ns()}")
        with mlflow.start_run(experiment_id=exp_id) as run:
            info = mlflow.pyfunc.log_model(name="model", python_model=Tripler(), pip_requirements=["mlflow"])
        return run.info.run_id, info.model_id, run.info.artifact_uri
    finally:
        mlflow.set_tracking_uri(prev)


def _raises(code, fn, *args, **kwargs):
    codes = (code,) if isinstance(code, str) else code
    with pytest.raises(MlflowException) as ei:
        fn(*args, **kwargs)
    assert ei.value.error_code in codes, (ei.value.error_code, str(ei.value))
    return ei.value


def test_registered_model_crud(client, uniq):
    name = f"rm-{uniq}"
    rm = client.create_registered_model(name, tags={"team": "ml", "k": "v"}, description="first")
    assert rm.name == name
    assert rm.description == "first"
    assert rm.creation_timestamp and rm.creation_timestamp > 0

    got = client.get_registered_model(name)
    assert got.name == name and got.description == "first"
    assert got.tags == {"team": "ml", "k": "v"}
    assert got.latest_versions == []

    client.update_registered_model(name, description="second")
    assert client.get_registered_model(name).description == "second"

    client.set_registered_model_tag(name, "extra", "1")
    client.set_registered_model_tag(name, "team", "core")
    assert client.get_registered_model(name).tags == {"team": "core", "k": "v", "extra": "1"}
    client.delete_registered_model_tag(name, "k")
    assert client.get_registered_model(name).tags == {"team": "core", "extra": "1"}

    client.rename_registered_model(name, f"{name}-renamed")
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, name)
    got = client.get_registered_model(f"{name}-renamed")
    assert got.description == "second" and got.tags["team"] == "core"

    client.delete_registered_model(f"{name}-renamed")
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, f"{name}-renamed")
    # The name is free again.
    client.create_registered_model(f"{name}-renamed")
    assert client.get_registered_model(f"{name}-renamed").description in (None, "")


def test_search_registered_models(client, uniq):
    prefix = f"srm-{uniq}"
    for i in range(5):
        client.create_registered_model(f"{prefix}-{i}", tags={"parity": "odd" if i % 2 else "even"})
    client.create_registered_model(f"unrelated-{uniq}")

    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    assert sorted(m.name for m in found) == [f"{prefix}-{i}" for i in range(5)]
    found = client.search_registered_models(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert len(found) == 5
    found = client.search_registered_models(filter_string=f"name = '{prefix}-3'")
    assert [m.name for m in found] == [f"{prefix}-3"]
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%' AND tags.parity = 'odd'")
    assert sorted(m.name for m in found) == [f"{prefix}-1", f"{prefix}-3"]

    desc = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [m.name for m in desc] == [f"{prefix}-{i}" for i in range(4, -1, -1)]

    names, token, pages = [], None, 0
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"],
                                               max_results=2, page_token=token)
        names += [m.name for m in page]
        pages += 1
        token = page.token
        assert pages < 10
        if not token:
            break
    assert names == [f"{prefix}-{i}" for i in range(5)]
    assert pages == 3


def test_model_versions_lifecycle(client, uniq, logged):
    rid, model_id, run_art = logged
    name = f"mv-{uniq}"
    client.create_registered_model(name)
    v1 = client.create_model_version(name, f"models:/{model_id}", run_id=rid, model_id=model_id,
                                     tags={"src": "logged"}, description="v one")
    assert str(v1.version) == "1"
    assert v1.name == name
    assert v1.status == "READY"
    assert v1.run_id == rid
    assert v1.current_stage == "None"
    v2 = client.create_model_version(name, f"{run_art}/model", run_id=rid)
    v3 = client.create_model_version(name, f"{run_art}/model", run_id=rid)
    assert (str(v2.version), str(v3.version)) == ("2", "3")

    got = client.get_model_version(name, "1")
    assert got.description == "v one"
    assert got.tags == {"src": "logged"}
    assert got.source == f"models:/{model_id}"
    assert got.creation_timestamp > 0

    client.update_model_version(name, "1", description="v one updated")
    assert client.get_model_version(name, "1").description == "v one updated"
    client.set_model_version_tag(name, "2", "quality", "good")
    client.set_model_version_tag(name, "2", "other", "x")
    assert client.get_model_version(name, "2").tags == {"quality": "good", "other": "x"}
    client.delete_model_version_tag(name, "2", "other")
    assert client.get_model_version(name, "2").tags == {"quality": "good"}

    found = client.search_model_versions(f"name = '{name}'")
    assert sorted(str(v.version) for v in found) == ["1", "2", "3"]
    found = client.search_model_versions(f"name = '{name}' AND run_id = '{rid}'")
    assert len(found) == 3
    found = client.search_model_versions(f"run_id = '{rid}'")
    assert {(v.name, str(v.version)) for v in found} >= {(name, "1"), (name, "2"), (name, "3")}
    found = client.search_model_versions(f"name = '{name}' AND tags.quality = 'good'")
    assert [str(v.version) for v in found] == ["2"]

    uri = client.get_model_version_download_uri(name, "2")
    assert uri == f"{run_art}/model"
    assert client.get_model_version_download_uri(name, "1")

    rm = client.get_registered_model(name)
    assert {str(v.version) for v in rm.latest_versions} == {"3"}

    client.delete_model_version(name, "1")
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version, name, "1")
    assert sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'")) == ["2", "3"]
    # Version numbers are never reused.
    v4 = client.create_model_version(name, f"{run_art}/model", run_id=rid)
    assert str(v4.version) == "4"


def test_stages_and_latest_versions(client, uniq, logged):
    rid, _, run_art = logged
    name = f"stg-{uniq}"
    client.create_registered_model(name)
    for _ in range(4):
        client.create_model_version(name, f"{run_art}/model", run_id=rid)

    mv = client.transition_model_version_stage(name, "1", "Staging")
    assert mv.current_stage == "Staging"
    client.transition_model_version_stage(name, "2", "Production")
    client.transition_model_version_stage(name, "3", "production")  # case-insensitive
    assert client.get_model_version(name, "3").current_stage == "Production"
    assert client.get_model_version(name, "2").current_stage == "Production"

    latest = client.get_latest_versions(name, stages=["Production"])
    assert [str(v.version) for v in latest] == ["3"]

    client.transition_model_version_stage(name, "4", "Production", archive_existing_versions=True)
    assert client.get_model_version(name, "4").current_stage == "Production"
    assert client.get_model_version(name, "3").current_stage == "Archived"
    assert client.get_model_version(name, "2").current_stage == "Archived"
    assert client.get_model_version(name, "1").current_stage == "Staging"

    by_stage = {v.current_stage: str(v.version) for v in client.get_latest_versions(name)}
    assert by_stage == {"Staging": "1", "Production": "4", "Archived": "3"}
    latest = client.get_latest_versions(name, stages=["Staging", "Production"])
    assert sorted(str(v.version) for v in latest) == ["1", "4"]
    assert client.get_latest_versions(name, stages=["None"]) == []

    with pytest.raises(MlflowException) as ei:
        client.transition_model_version_stage(name, "1", "NotAStage")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"


def test_aliases(client, uniq, logged):
    rid, _, run_art = logged
    name = f"al-{uniq}"
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, f"{run_art}/model", run_id=rid)

    client.set_registered_model_alias(name, "champion", "3")
    client.set_registered_model_alias(name, "challenger", "2")
    mv = client.get_model_version_by_alias(name, "champion")
    assert str(mv.version) == "3"
    assert "champion" in mv.aliases
    assert client.get_registered_model(name).aliases == {"champion": "3", "challenger": "2"}
    assert client.get_model_version(name, "2").aliases == ["challenger"]

    client.set_registered_model_alias(name, "champion", "1")  # move it
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert client.get_model_version(name, "3").aliases == []

    client.delete_registered_model_alias(name, "champion")
    # The reference server answers a missing alias with 400 INVALID_PARAMETER_VALUE.
    _raises(("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"),
            client.get_model_version_by_alias, name, "champion")
    assert client.get_registered_model(name).aliases == {"challenger": "2"}

    # Deleting a version drops its aliases.
    client.delete_model_version(name, "2")
    assert client.get_registered_model(name).aliases == {}


def test_register_model_end_to_end_and_load(client, uniq, logged):
    rid, model_id, _ = logged
    name = f"e2e-reg-{uniq}"
    mv = mlflow.register_model(f"runs:/{rid}/model", name)
    assert str(mv.version) == "1"
    assert mv.status == "READY"
    got = client.get_model_version(name, "1")
    assert got.run_id == rid
    assert got.model_id in (None, "", model_id)

    mv2 = mlflow.register_model(f"models:/{model_id}", name)
    assert str(mv2.version) == "2"

    client.set_registered_model_alias(name, "prod", "1")
    df = pd.DataFrame({"a": [1.0, 2.0]})
    for uri in (f"models:/{name}@prod", f"models:/{name}/1", f"models:/{name}/2"):
        model = mlflow.pyfunc.load_model(uri)
        assert list(model.predict(df)["a"]) == [3.0, 6.0], uri

    client.transition_model_version_stage(name, "2", "Staging")
    model = mlflow.pyfunc.load_model(f"models:/{name}/Staging")
    assert list(model.predict(df)["a"]) == [3.0, 6.0]


def test_registry_rest_wire_details(api, uniq):
    """Raw wire details the client relies on: GET with query strings, DELETE with a JSON body,
    PATCH for updates."""
    name = f"wire rm {uniq}"  # spaces: '+' in query strings
    body = api.ok(api.post("/api/2.0/mlflow/registered-models/create",
                           {"name": name, "tags": [{"key": "a", "value": "1"}], "description": "d"}))
    assert body["registered_model"]["name"] == name
    r = api.s.get(api.url("/api/2.0/mlflow/registered-models/get?name=" + name.replace(" ", "+")), timeout=60)
    assert api.ok(r)["registered_model"]["description"] == "d"
    api.ok(api.patch("/api/2.0/mlflow/registered-models/update", {"name": name, "description": "e"}))
    assert api.ok(api.get("/api/2.0/mlflow/registered-models/get",
                          params={"name": name}))["registered_model"]["description"] == "e"
    api.ok(api.delete("/api/2.0/mlflow/registered-models/delete-tag", {"name": name, "key": "a"}))
    got = api.ok(api.get("/api/2.0/mlflow/registered-models/get", params={"name": name}))["registered_model"]
    assert not got.get("tags")
    api.ok(api.delete("/api/2.0/mlflow/registered-models/delete", {"name": name}))
    u.assert_error(api.get("/api/2.0/mlflow/registered-models/get", params={"name": name}), 404,
                   "RESOURCE_DOES_NOT_EXIST")
