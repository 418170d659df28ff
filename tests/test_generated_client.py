"""The client a standard generator (openapi-python-client, pinned in requirements-dev.txt) builds from
the spec: built without a single warning, every JSON answer of every operation parsed into a model, and
used against the app in this process (an httpx transport into chalice's test client, so conftest checks
every answer against the spec too).

`make lint` runs this file (it runs beside the pytest job, which leaves it out): generating takes a
few seconds of one core."""
import copy
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from chalice.test import Client

from chalicelib import openapi
from conftest import ADMIN_TOKEN, DEMO_CONTRACT

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "sla_clock_client"
METHODS = ("get", "put", "post", "delete", "patch")


class ChaliceTransport(httpx.BaseTransport):
    """httpx's requests answered by chalice's test client: the generated client calls the app in-process."""

    def __init__(self, http):
        self.http = http

    def handle_request(self, request):
        answer = self.http.request(request.method, request.url.raw_path.decode("ascii"),
                                   headers=dict(request.headers), body=request.read())
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.body)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The generated package, imported. The generator's post hooks (ruff on its output) are off: the code
    is imported, not read."""
    folder = tmp_path_factory.mktemp("client")
    config = folder / "config.yaml"
    config.write_text("post_hooks: []\n")
    result = subprocess.run(
        [GENERATOR, "generate", "--path", str(openapi.SPEC_PATH), "--meta", "none",
         "--output-path", str(folder / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, timeout=300, check=False)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == f"Generating {folder / PACKAGE}", output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))


def operations():
    return [(path, method, operation) for path, item in openapi.document()["paths"].items()
            for method, operation in item.items() if method in METHODS]


def operation_module(operation):
    tag = operation["tags"][0]
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", operation["operationId"]).lower()
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


def test_every_json_answer_of_every_operation_is_parsed_into_a_model(generated):
    for path, method, operation in operations():
        source = inspect.getsource(operation_module(operation)._parse_response)
        # one `if response.status_code == N:` block per documented status; a JSON one builds a model
        branches = dict(re.findall(r"response\.status_code == (\d+):(.*?)return", source, re.DOTALL))
        for status, response in operation["responses"].items():
            if "$ref" in response:
                response = openapi.document()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
            if "application/json" in (response.get("content") or {}):
                assert ".from_dict(response.json())" in branches.get(status, ""), (method, path, status)


def test_the_generated_client_runs_a_contract_and_a_request_with_typed_models(generated, aws):
    from app import app

    from_package = lambda name: importlib.import_module(f"{PACKAGE}.{name}")  # noqa: E731
    models, contracts, requests, service = (from_package(name) for name in
                                             ("models", "api.contracts", "api.requests", "api.service"))
    document = copy.deepcopy(DEMO_CONTRACT) | {"webhooks": [
        {"url": "https://hooks.customer.example/sla", "events": ["breach"], "secret": "s" * 32}]}
    with Client(app) as chalice_client:
        api = generated.AuthenticatedClient(
            base_url="http://sla.test", token=ADMIN_TOKEN, raise_on_unexpected_status=True,
            httpx_args={"transport": ChaliceTransport(chalice_client.http)})
        health = service.health.sync_detailed(client=api)
        assert health.status_code == 200 and health.parsed.status == "ok"

        put = contracts.put_contract.sync_detailed("acme", client=api, body=models.ContractInput.from_dict(document))
        assert put.status_code == 201 and isinstance(put.parsed, models.Contract), put.content

        contract = contracts.get_contract.sync("acme", client=api)
        assert isinstance(contract, models.Contract) and contract.name == "XX系统技术支持"
        [webhook] = contract.webhooks
        assert isinstance(webhook, models.WebhookAsRead) and webhook.secret == "****"

        created = requests.create_request.sync(client=api, body=models.RequestInput.from_dict(
            {"contract_id": "acme", "priority": "high", "channel": "email", "subject": "打印机坏了",
             "requester": {"email": "li@customer.example"}}))
        assert isinstance(created, models.Request) and created.subject == "打印机坏了"
        assert isinstance(created.sla, models.RequestSla)

        page = requests.list_requests.sync(client=api, contract_id="acme")
        assert [item.request_id for item in page.items] == [created.request_id]

        missing = contracts.get_contract.sync("nobody", client=api)
        assert isinstance(missing, models.Error) and missing.code == models.ErrorCode.NOTFOUNDERROR
