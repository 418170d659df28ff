"""Contracts, tokens, auth and errors through `chalice.test.Client` with moto (see docs/api.md)."""
import copy
import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import time_machine

from chalicelib.aws.tables import TokenModel
from conftest import ADMIN_TOKEN, DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


def test_health_answers_without_a_token(client):
    assert client.get("/health") == (200, {"status": "ok"})


def test_no_token_is_401_and_a_wrong_token_is_401(client):
    status, body = client.get("/contracts/acme")
    assert status == 401 and body["Code"] == "UnauthorizedError"
    assert client.as_token("tok_nothing.secret").get("/contracts/acme")[0] == 401
    assert client.as_token("garbage").get("/contracts/acme")[0] == 401
    assert client.get("/contracts/acme", headers={"Authorization": "Basic abc"})[0] == 401


def test_admin_puts_a_contract_with_defaults_applied_and_a_version(admin):
    status, body = admin.put("/contracts/acme", {"name": "最小合同", "priorities": {"high": {"first_response": "2h"}}})
    assert status == 201
    assert body["version"] == 1 and body["contract_id"] == "acme"
    assert body["calendar"]["holidays"] == "CN" and body["warn_at"] == [0.5, 0.8]
    assert admin.get("/contracts/acme") == (200, body)


def test_each_change_bumps_the_contract_version(admin):
    admin.put("/contracts/acme", DEMO_CONTRACT)
    changed = copy.deepcopy(DEMO_CONTRACT)
    changed["name"] = "新名称"
    status, body = admin.put("/contracts/acme", changed)
    assert status == 200 and body["version"] == 2 and body["name"] == "新名称"
    assert admin.get("/contracts/acme")[1]["version"] == 2


def test_a_bad_contract_is_400_naming_the_field_and_nothing_is_stored(admin):
    bad = copy.deepcopy(DEMO_CONTRACT)
    bad["calendar"]["hours"] = [["09:00", "12:00"], ["11:30", "17:00"]]
    status, body = admin.put("/contracts/acme", bad)
    assert status == 400 and body["Code"] == "BadRequestError" and "calendar.hours" in body["Message"]
    assert admin.get("/contracts/acme")[0] == 404


def test_contract_ids_are_validated(admin):
    status, body = admin.put("/contracts/has space", DEMO_CONTRACT)
    assert status == 400 and "contract_id" in body["Message"]


def test_unknown_contract_is_404(admin):
    assert admin.get("/contracts/nobody")[0] == 404


def test_only_admins_put_contracts_and_issue_tokens(acme):
    _, agent, client = acme
    assert agent.put("/contracts/acme", DEMO_CONTRACT)[0] == 403
    assert client.post("/tokens", {"role": "admin"})[0] == 403
    assert agent.delete("/tokens/tok_x")[0] == 403


def test_agents_and_clients_read_their_own_contract_only(acme):
    admin, agent, client = acme
    admin.put("/contracts/other", DEMO_CONTRACT)
    assert agent.get("/contracts/acme")[0] == 200
    assert client.get("/contracts/acme")[0] == 200
    status, body = agent.get("/contracts/other")
    assert status == 403 and "name" not in body


def test_tokens_are_returned_once_and_only_their_hash_is_stored(admin):
    admin.put("/contracts/acme", DEMO_CONTRACT)
    status, body = admin.post("/tokens", {"role": "agent", "contract_id": "acme"})
    assert status == 201 and body["role"] == "agent" and body["contract_id"] == "acme"
    token_id, secret = body["token"].split(".", 1)
    stored = TokenModel.get(token_id)
    assert stored.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(stored.attribute_values)


def test_a_revoked_token_no_longer_works(admin):
    admin.put("/contracts/acme", DEMO_CONTRACT)
    body = admin.post("/tokens", {"role": "client", "contract_id": "acme"})[1]
    client = admin.as_token(body["token"])
    assert client.get("/contracts/acme")[0] == 200
    assert admin.delete(f"/tokens/{body['token_id']}")[0] == 204
    assert client.get("/contracts/acme")[0] == 401
    assert admin.delete(f"/tokens/{body['token_id']}")[0] == 404


def test_a_token_with_the_right_id_and_a_wrong_secret_is_401(admin):
    admin.put("/contracts/acme", DEMO_CONTRACT)
    token_id = admin.post("/tokens", {"role": "agent", "contract_id": "acme"})[1]["token_id"]
    assert admin.as_token(f"{token_id}.wrong").get("/contracts/acme")[0] == 401


def test_token_requests_are_validated(admin):
    admin.put("/contracts/acme", DEMO_CONTRACT)
    cases = [
        ({"role": "owner"}, "role"),
        ({"role": "agent"}, "contract_id"),
        ({"role": "admin", "contract_id": "acme"}, "contract_id"),
        ({"role": "client", "contract_id": "acme", "ttl": 5}, "ttl"),
        ([], "body"),
    ]
    for body, field in cases:
        status, answer = admin.post("/tokens", body)
        assert status == 400 and field in answer["Message"], (body, answer)
    assert admin.post("/tokens", {"role": "agent", "contract_id": "ghost"})[0] == 404


def test_new_admin_tokens_are_admins(admin):
    token = admin.post("/tokens", {"role": "admin"})[1]["token"]
    assert admin.as_token(token).put("/contracts/x", DEMO_CONTRACT)[0] == 201


def test_bodies_over_64_kib_are_413(acme):
    _, agent, _ = acme
    big = dict(REQUEST, description="x" * (64 * 1024))
    status, body = agent.post("/requests", big)
    assert status == 413 and body["Code"] == "RequestEntityTooLargeError"


def test_malformed_json_is_400_not_500(acme):
    _, agent, _ = acme
    status, body = agent.post("/requests", raw="{not json")
    assert status == 400 and "body" in body["Message"]
    status, body = agent.post("/requests", raw="")
    assert status == 400


def test_changing_a_contract_reevaluates_open_requests(acme):
    admin, agent, _ = acme
    with time_machine.travel(datetime(2026, 11, 27, 15, 0, tzinfo=SH), tick=False):
        request = agent.post("/requests", dict(REQUEST, priority="medium"))[1]
        assert request["sla"]["first_response"]["due_at"] == "2026-11-30T11:00:00+08:00"
        changed = copy.deepcopy(DEMO_CONTRACT)
        changed["calendar"]["extra_holidays"] = ["2026-11-30"]
        assert admin.put("/contracts/acme", changed)[0] == 200
        body = agent.get(f"/requests/{request['request_id']}")[1]
    assert body["contract_version"] == 2
    assert body["sla"]["first_response"]["due_at"] == "2026-12-01T11:00:00+08:00"
    assert body["next_check_at"] == "2026-11-27T17:00:00+08:00"  # 50 % of 4 h: the end of Friday


def test_a_contract_change_may_not_drop_a_priority_that_open_requests_use(acme):
    admin, agent, _ = acme
    agent.post("/requests", dict(REQUEST, priority="low"))
    changed = copy.deepcopy(DEMO_CONTRACT)
    del changed["priorities"]["low"]
    status, body = admin.put("/contracts/acme", changed)
    assert status == 409 and "priorities" in body["Message"]
    assert admin.get("/contracts/acme")[1]["version"] == 1


def test_a_resolved_request_keeps_the_contract_version_it_was_resolved_under(acme):
    admin, agent, _ = acme
    with time_machine.travel(datetime(2026, 11, 23, 10, 0, tzinfo=SH), tick=False):
        request_id = agent.post("/requests", REQUEST)[1]["request_id"]
        agent.post(f"/requests/{request_id}/events", {"type": "resolve"})
        stricter = copy.deepcopy(DEMO_CONTRACT)
        stricter["priorities"]["high"]["first_response"] = "30m"
        admin.put("/contracts/acme", stricter)
    with time_machine.travel(datetime(2026, 11, 23, 11, 0, tzinfo=SH), tick=False):
        body = agent.get(f"/requests/{request_id}")[1]
    assert body["contract_version"] == 1
    assert body["sla"]["first_response"]["due_at"] == "2026-11-23T12:00:00+08:00"


def test_bootstrap_admin_token_comes_from_the_environment(client, monkeypatch):
    monkeypatch.setenv("SLA_ADMIN_TOKEN", "rotated-secret")
    assert client.as_token(ADMIN_TOKEN).get("/contracts/acme")[0] == 401
    assert client.as_token("rotated-secret").get("/contracts/acme")[0] == 404
    monkeypatch.delenv("SLA_ADMIN_TOKEN")
    assert client.as_token("rotated-secret").get("/contracts/acme")[0] == 401
