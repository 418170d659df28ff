"""The OpenAPI document: it describes exactly the routes app.py has, it is valid OpenAPI 3.1, it is
served without a token, and the check every test's responses go through (conftest) catches what is
off-spec."""
import json
from pathlib import Path

import pytest
from openapi_check import SPEC, json_pointer_token
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
                assert {"400", "413", "415"} <= set(responses), (method, path)
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


# Keywords of a JSON Schema 2020-12 schema (core, applicator, unevaluated, validation, format, content
# and meta-data vocabularies) and those OpenAPI 3.1 adds to its Schema Object; `x-…` extensions too.
SCHEMA_KEYWORDS = {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment", "$defs",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "items",
    "contains", "properties", "patternProperties", "additionalProperties", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties",
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired",
    "format", "contentEncoding", "contentMediaType", "contentSchema",
    "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    "discriminator", "xml", "externalDocs", "example",
}
SUBSCHEMA = {"not", "if", "then", "else", "items", "contains", "additionalProperties", "propertyNames",
             "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
SUBSCHEMA_MAPS = {"$defs", "properties", "patternProperties", "dependentSchemas"}


def schema_keyword_problems(schema, where):
    """Keys of `schema` (and of every schema inside it) that no JSON Schema or OpenAPI keyword names."""
    if isinstance(schema, bool):
        return []
    if not isinstance(schema, dict):
        return [f"{where}: a schema is an object or a boolean, not {schema!r}"]
    problems = [f"{where}: {key!r} is not a schema keyword" for key in schema
                if key not in SCHEMA_KEYWORDS and not key.startswith("x-")]
    for key, value in schema.items():
        if key in SUBSCHEMA:
            problems += schema_keyword_problems(value, f"{where}/{key}")
        elif key in SUBSCHEMA_LISTS:
            for index, item in enumerate(value):
                problems += schema_keyword_problems(item, f"{where}/{key}/{index}")
        elif key in SUBSCHEMA_MAPS:
            for name, item in value.items():
                problems += schema_keyword_problems(item, f"{where}/{key}/{name}")
    return problems


def spec_schemas(document):
    """(JSON pointer, schema) of every schema the document holds: components, parameters, headers, bodies."""
    def media(content, where):
        return [(f"{where}/content/{json_pointer_token(name)}/schema", item["schema"])
                for name, item in (content or {}).items() if "schema" in item]

    def parameters(items, where):
        return [(f"{where}/{index}/schema", item["schema"]) for index, item in enumerate(items or [])
                if "schema" in item]

    def response(item, where):
        headers = [(f"{where}/headers/{name}/schema", header["schema"])
                   for name, header in (item.get("headers") or {}).items() if "schema" in header]
        return media(item.get("content"), where) + headers

    components = document.get("components", {})
    found = [(f"#/components/schemas/{name}", schema) for name, schema in components.get("schemas", {}).items()]
    found += [(f"#/components/parameters/{name}/schema", item["schema"])
              for name, item in components.get("parameters", {}).items() if "schema" in item]
    for name, item in components.get("responses", {}).items():
        found += response(item, f"#/components/responses/{name}")
    for name, item in components.get("requestBodies", {}).items():
        found += media(item.get("content"), f"#/components/requestBodies/{name}")
    for path, item in document["paths"].items():
        where = f"#/paths/{json_pointer_token(path)}"
        found += parameters(item.get("parameters"), f"{where}/parameters")
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            found += parameters(operation.get("parameters"), f"{where}/{method}/parameters")
            found += media((operation.get("requestBody") or {}).get("content"), f"{where}/{method}/requestBody")
            for status, answer in operation["responses"].items():
                found += response(answer, f"{where}/{method}/responses/{status}")
    return found


def test_every_schema_of_the_spec_uses_only_json_schema_and_openapi_keywords():
    schemas = spec_schemas(openapi.document())
    assert len(schemas) > 100
    assert [problem for where, schema in schemas for problem in schema_keyword_problems(schema, where)] == []


def test_the_keyword_check_finds_a_description_split_into_a_bogus_key():
    # what an unquoted ", " in a YAML flow mapping makes of a description
    schema = {"type": "object", "properties": {"holidays": {"type": ["string", "null"],
                                                            "description": "A country code", "or null": None}}}
    assert schema_keyword_problems(schema, "#/x") == ["#/x/properties/holidays: 'or null' is not a schema keyword"]
    assert schema_keyword_problems({"items": {"minimum": 1, "maxium": 3}}, "#/y") == [
        "#/y/items: 'maxium' is not a schema keyword"]
