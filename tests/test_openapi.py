"""The OpenAPI document: it describes exactly the routes app.py has, it is valid OpenAPI 3.1, it is
served without a token, and the check every test's responses go through (conftest) catches what is
off-spec."""
import json
from pathlib import Path

import pytest
from openapi_check import SPEC
from openapi_spec_validator import validate

from chalicelib import openapi

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "put", "post", "delete", "patch")
JSON = {"Content-Type": "application/json"}


def spec_operations():
    return {(path, method.upper()) for path, item in openapi.document()["paths"].items()
            for method in item if method in METHODS}


def test_every_route_of_the_app_is_in_the_spec_and_every_operation_of_the_spec_is_a_route():
    from app import app

    routes = {(path, method) for path, methods in app.routes.items() for method in methods}
    assert routes - spec_operations() == set(), "routes missing from openapi.yaml"
    assert spec_operations() - routes == set(), "operations of openapi.yaml that app.py does not have"


def test_the_spec_is_valid_openapi_3_1_and_every_operation_is_named_and_documents_its_errors():
    document = openapi.document()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    names = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            names.append(operation["operationId"])
            responses = operation["responses"]
            if operation.get("security", document["security"]):
                assert "401" in responses and "503" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), (method, path)
    assert len(names) == len(set(names))


def test_the_repository_root_openapi_yaml_is_the_spec_the_api_serves():
    assert (ROOT / "openapi.yaml").resolve() == openapi.SPEC_PATH.resolve()


def test_openapi_json_is_served_without_a_token_read_once_per_process(client):
    openapi.document.cache_clear()
    status, body = client.get("/openapi.json")
    assert status == 200 and body == json.loads(json.dumps(openapi.document()))
    assert client.get("/openapi.json")[1] == body
    assert openapi.document.cache_info().misses == 1


@pytest.mark.parametrize(("status", "headers", "body", "problem"), [
    (201, JSON, {"status": "ok"}, "status not documented"),
    (200, JSON, {"status": "ok", "uptime": 3}, "'uptime' was unexpected"),
    (200, JSON, {"status": 1}, "'ok' was expected"),
    (200, {"Content-Type": "text/plain"}, "ok", "content type 'text/plain'"),
])
def test_the_response_check_catches_what_the_spec_does_not_describe(status, headers, body, problem):
    text = json.dumps(body) if isinstance(body, dict) else body
    [found] = SPEC.problems("GET", "/health", status, headers, text.encode())
    assert problem in found


def test_the_response_check_catches_a_field_of_another_type_or_an_instant_without_offset():
    token = {"token_id": "tok_1", "role": "agent", "contract_id": "acme", "created_at": "2026-11-23T02:00:00+00:00",
             "expires_at": None, "last_used_at": None}
    page = {"items": [token], "next": None}
    assert SPEC.problems("GET", "/tokens", 200, JSON, json.dumps(page)) == []
    for field, value in (("created_at", "2026-11-23T02:00:00"), ("contract_id", 7), ("role", "owner"),
                         ("token", "tok_1.secret")):
        problems = SPEC.problems("GET", "/tokens", 200, JSON, json.dumps({**page, "items": [{**token, field: value}]}))
        assert problems, field
    assert SPEC.problems("GET", "/nowhere", 200, JSON, "{}") == ["GET /nowhere is not an operation of the spec"]
    assert SPEC.problems("DELETE", "/tokens/tok_1", 204, {}, b"") == []
    assert SPEC.problems("DELETE", "/tokens/tok_1", 204, {}, b"{}") != []
