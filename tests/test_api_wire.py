"""What a client system sees on the wire: UTF-8 JSON, a 415 for a body that is not JSON on every route
that takes one, the error codes' one naming rule, and the spec's `servers` naming the server asked."""
import json
import re
from http import HTTPStatus

import pytest
from chalice.test import Client

from chalicelib import openapi
from chalicelib.http import JSON_CONTENT_TYPE, STATUS, render_json
from conftest import ADMIN_TOKEN, DEMO_CONTRACT

BODY_METHODS = ("put", "post", "patch")


def raw_call(chalice_client, method, path, headers, body=b""):
    response = chalice_client.http.request(method, path, headers=headers, body=body)
    return response.status_code, response.headers, response.body


def test_json_answers_are_utf8_text_with_the_charset_said(acme):
    from app import app

    with Client(app) as chalice_client:
        status, headers, body = raw_call(chalice_client, "GET", "/contracts/acme",
                                         {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    assert '"name":"XX系统技术支持"'.encode() in body and b"\\u" not in body
    assert json.loads(body.decode("utf-8"))["name"] == DEMO_CONTRACT["name"]


def test_error_answers_are_utf8_json_too(client):
    from app import app

    with Client(app) as chalice_client:
        status, headers, body = raw_call(chalice_client, "GET", "/contracts/acme", {"Authorization": "Bearer 系统"})
    assert status == 401 and headers["Content-Type"] == JSON_CONTENT_TYPE
    assert json.loads(body.decode("utf-8"))["Code"] == "UnauthorizedError"


def test_a_lone_surrogate_is_rendered_as_its_escape_and_the_rest_as_text():
    text = render_json({"name": "系统\ud800", "ok": "\u2028"})
    assert text == '{"name":"系统\\ud800","ok":"\u2028"}'
    text.encode("utf-8")  # what the answer is sent as: no UnicodeEncodeError
    assert json.loads(text) == {"name": "系统\ud800", "ok": "\u2028"}


def body_operations():
    """(method, path with sample parameters) of every operation of the spec that takes a body."""
    samples = {"contract_id": "acme", "request_id": "req_unknown", "country": "CN", "year": "2027"}
    return [(method.upper(), re.sub(r"\{(\w+)\}", lambda found: samples[found.group(1)], path))
            for path, item in openapi.document()["paths"].items()
            for method, operation in item.items() if method in BODY_METHODS and "requestBody" in operation]


@pytest.mark.parametrize(("method", "path"), body_operations())
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=iso-8859-1"])
def test_a_body_that_is_not_json_is_a_415_on_every_route_that_takes_one(acme, method, path, content_type):
    from app import app

    with Client(app) as chalice_client:
        status, headers, body = raw_call(chalice_client, method, path,
                                         {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": content_type},
                                         b"name=x")
    answer = json.loads(body)
    assert (status, answer["Code"]) == (415, "UnsupportedMediaTypeError"), answer
    assert answer["Message"].startswith("Content-Type: ") and headers["Content-Type"] == JSON_CONTENT_TYPE


def test_json_media_types_are_taken_in_any_case_and_a_missing_one_means_json(acme):
    admin = acme[0]
    for content_type in ("Application/JSON; charset=UTF-8", 'application/json;charset="utf-8"'):
        status, body = admin.post("/tokens", {"role": "agent", "contract_id": "acme"},
                                  headers={"Content-Type": content_type})
        assert status == 201, body
    from app import app

    with Client(app) as chalice_client:
        status, _, body = raw_call(chalice_client, "POST", "/tokens", {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                   json.dumps({"role": "agent", "contract_id": "acme"}).encode())
    assert status == 201, body


def test_a_route_without_a_body_ignores_the_content_type(acme):
    admin = acme[0]
    assert admin.get("/contracts/acme", headers={"Content-Type": "text/plain"})[0] == 200
    assert admin.get("/health", headers={"Content-Type": "image/png"})[0] == 200


def reason_code(status):
    """The Code of a status: its reason phrase in PascalCase, then "Error". 413 keeps RFC 2616's phrase,
    as Chalice's error of that name does."""
    phrase = "Request Entity Too Large" if status == 413 else HTTPStatus(status).phrase
    return phrase.title().replace(" ", "") + "Error"


def test_every_error_code_is_its_status_reason_phrase_then_error():
    assert [code for code, status in STATUS.items() if code != reason_code(status)] == []
    documented = openapi.document()["components"]["schemas"]["Error"]["properties"]["Code"]["enum"]
    # what the app answers, and API Gateway's throttling (infra/generate.py's gateway responses)
    assert set(documented) == set(STATUS) | {reason_code(429)}


def test_the_served_spec_names_the_server_the_request_came_in_on(client):
    from app import app

    with Client(app) as chalice_client:
        _, _, body = raw_call(chalice_client, "GET", "/openapi.json", {"Host": "127.0.0.1:8123"})
        assert json.loads(body)["servers"] == [{"url": "http://127.0.0.1:8123",
                                                "description": "The server this document came from"}]
        _, _, body = raw_call(chalice_client, "GET", "/openapi.json",
                              {"Host": "sla.example.com", "X-Forwarded-Proto": "https"})
        assert json.loads(body)["servers"][0]["url"] == "https://sla.example.com"
        for forged in ({"Host": "evil.example/<script>"}, {"Host": "a.example", "X-Forwarded-Proto": "javascript"}):
            _, _, body = raw_call(chalice_client, "GET", "/openapi.json", forged)
            assert json.loads(body)["servers"] == [{"url": "/", "description": "The server this document is served by"}]


@pytest.mark.parametrize(("path", "base_url"), [
    ("/api/openapi.json", "https://abc123.execute-api.eu-west-1.amazonaws.com/api"),  # the stage
    ("/openapi.json", "https://abc123.execute-api.eu-west-1.amazonaws.com"),  # a custom domain, no base path
])
def test_behind_api_gateway_the_served_spec_names_its_domain_and_stage(aws, path, base_url):
    from app import app

    event = {
        "resource": "/openapi.json", "path": "/openapi.json", "httpMethod": "GET", "body": None,
        "headers": {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https"},
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/openapi.json", "httpMethod": "GET", "path": path, "stage": "api",
                           "domainName": "abc123.execute-api.eu-west-1.amazonaws.com"},
    }
    answer = app(event, None)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["servers"][0]["url"] == base_url
