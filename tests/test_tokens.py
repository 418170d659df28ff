"""Token lifecycle: admins list the tokens (paged, never a secret), a token may expire, its last use is
recorded at most once a minute, and rotation is issue-then-revoke."""
import json
from datetime import UTC, datetime, timedelta

import botocore.client
import pytest
import time_machine

from chalicelib import tokens
from chalicelib.aws import store
from chalicelib.aws.tables import TokenModel
from conftest import ADMIN_TOKEN

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


class TokenWrites:
    """UpdateItem calls on the tokens table, at botocore."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = botocore.client.BaseClient._make_api_call
        writes = self

        def counting(client, operation, params):
            if operation == "UpdateItem" and params.get("TableName") == TokenModel.Meta.table_name:
                writes.count += 1
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)


def all_tokens(admin, limit):
    found, query = [], f"limit={limit}"
    while True:
        status, page = admin.get(f"/tokens?{query}")
        assert status == 200, page
        assert len(page["items"]) <= limit
        found += page["items"]
        if not page["next"]:
            return found
        query = f"limit={limit}&next={page['next']}"


def test_admins_list_every_token_a_page_at_a_time_and_never_see_a_secret(acme, clock):
    admin, agent, client = acme
    issued = [admin.post("/tokens", {"role": "admin"})[1]]
    issued += [admin.post("/tokens", {"role": "client", "contract_id": "acme"})[1] for _ in range(4)]
    secrets = [agent.token, client.token] + [t["token"] for t in issued]
    for limit in (1, 2, 100):
        listed = all_tokens(admin, limit)
        assert len(listed) == 7 and len({t["token_id"] for t in listed}) == 7
        text = json.dumps(listed)
        assert not any(secret.split(".", 1)[1] in text for secret in secrets)
        assert all(set(t) == {"token_id", "role", "contract_id", "created_at", "expires_at", "last_used_at"}
                   for t in listed)
    by_id = {t["token_id"]: t for t in all_tokens(admin, 100)}
    assert by_id[issued[0]["token_id"]] == {k: v for k, v in issued[0].items() if k != "token"}
    assert by_id[agent.token.split(".")[0]]["role"] == "agent"
    assert by_id[agent.token.split(".")[0]]["contract_id"] == "acme"
    assert "secret_sha256" not in text and tokens.BOOTSTRAP_ID not in by_id  # the configured admin is not stored


def test_only_admins_list_tokens_and_bad_paging_is_a_400(acme):
    admin, agent, client = acme
    assert agent.get("/tokens")[0] == 403 and client.get("/tokens")[0] == 403
    assert admin.as_token(None).get("/tokens")[0] == 401
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("next=garbage", "next"),
                         ("role=agent", "role")):
        status, body = admin.get(f"/tokens?{query}")
        assert status == 400 and body["Message"].startswith(f"{field}:"), body
    listing_cursor = store.encode_cursor({"request_id": {"S": "req_1"}, "contract_id": {"S": "acme"},
                                          "listed_at": {"S": "1795400000.000000#req_1"}})
    status, body = admin.get(f"/tokens?next={listing_cursor}")
    assert status == 400 and body["Message"].startswith("next:")


def test_a_token_with_an_expiry_works_until_then_and_gets_401_from_then_on(acme, clock):
    admin, _, _ = acme
    expires = T0 + timedelta(hours=1)
    status, issued = admin.post("/tokens", {"role": "agent", "contract_id": "acme",
                                            "expires_at": "2026-11-23T11:00:00+08:00"})
    assert status == 201 and issued["expires_at"] == expires.isoformat()
    agent = admin.as_token(issued["token"])
    assert agent.get("/contracts/acme")[0] == 200
    clock.move_to(expires - timedelta(microseconds=1))
    assert agent.get("/contracts/acme")[0] == 200
    clock.move_to(expires)
    status, body = agent.get("/contracts/acme")
    assert status == 401 and body == {"Code": "UnauthorizedError", "Message": "unknown or revoked token"}
    listed = {t["token_id"]: t for t in all_tokens(admin, 100)}[issued["token_id"]]
    assert listed["expires_at"] == expires.isoformat()  # still listed: revoke it to remove it


@pytest.mark.parametrize(("expires_at", "message"), [
    ("2026-11-23T02:00:00+00:00", "must lie in the future"),
    ("2026-11-23T01:00:00+00:00", "must lie in the future"),
    ("2026-11-23T12:00:00", "must include a UTC offset"),
    ("tomorrow", "is not an ISO-8601 timestamp"),
    ("2046-11-23T02:00:00+00:00", "must lie within 3653 days"),
    ("9999-12-31T23:59:59-23:59", "must lie within 3653 days"),
    (1798000000, "must be an ISO-8601 timestamp string"),
])
def test_an_expiry_must_be_a_future_instant_with_an_offset(acme, clock, expires_at, message):
    admin, _, _ = acme
    status, body = admin.post("/tokens", {"role": "client", "contract_id": "acme", "expires_at": expires_at})
    assert status == 400 and body["Message"].startswith("expires_at:") and message in body["Message"], body


def test_last_use_is_recorded_at_most_once_a_minute_per_token(acme, clock, monkeypatch):
    admin, agent, _ = acme
    token_id = agent.token.split(".")[0]

    def last_used():
        return {t["token_id"]: t for t in all_tokens(admin, 100)}[token_id]["last_used_at"]

    assert last_used() is None
    writes = TokenWrites(monkeypatch)
    for _ in range(3):
        assert agent.get("/contracts/acme")[0] == 200
    assert last_used() == T0.isoformat()
    clock.move_to(T0 + timedelta(seconds=59))
    assert agent.get("/contracts/acme")[0] == 200
    assert last_used() == T0.isoformat()
    clock.move_to(T0 + timedelta(seconds=60))
    assert agent.get("/contracts/acme")[0] == 200
    assert last_used() == (T0 + timedelta(seconds=60)).isoformat()
    # The admin's own listing calls: the configured bootstrap token is not stored, so never written.
    assert writes.count == 2


def test_two_processes_that_read_the_token_before_either_stamped_it_write_once(acme, clock, monkeypatch):
    _, agent, _ = acme
    token_id = agent.token.split(".")[0]
    first, second = TokenModel.get(token_id), TokenModel.get(token_id)  # both see no last use
    writes = TokenWrites(monkeypatch)
    store.stamp_token_use(first, T0, tokens.USE_STAMP_EVERY)
    # Its condition fails: nothing written, no error.
    store.stamp_token_use(second, T0 + timedelta(seconds=5), tokens.USE_STAMP_EVERY)
    assert writes.count == 2
    assert TokenModel.get(token_id).last_used_at == T0


def test_a_failing_stamp_never_fails_the_call(acme, clock, monkeypatch, caplog):
    _, agent, _ = acme
    original = botocore.client.BaseClient._make_api_call

    def throttled(client, operation, params):
        if operation == "UpdateItem" and params.get("TableName") == TokenModel.Meta.table_name:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    assert agent.get("/contracts/acme")[0] == 200
    assert "token use not recorded" in caplog.text


def test_rotation_issue_the_new_token_then_revoke_the_old_one(acme):
    admin, old, _ = acme
    old_id = old.token.split(".")[0]
    status, fresh = admin.post("/tokens", {"role": "agent", "contract_id": "acme"})
    assert status == 201
    new = admin.as_token(fresh["token"])
    assert new.get("/contracts/acme")[0] == 200 and old.get("/contracts/acme")[0] == 200  # both work meanwhile
    assert admin.delete(f"/tokens/{old_id}")[0] == 204
    assert old.get("/contracts/acme")[0] == 401 and new.get("/contracts/acme")[0] == 200
    assert old_id not in {t["token_id"] for t in all_tokens(admin, 100)}
    assert admin.delete(f"/tokens/{old_id}")[0] == 404


def test_the_configured_admin_token_never_expires_nor_is_listed(acme, clock):
    admin, _, _ = acme
    clock.move_to(T0 + timedelta(days=4000))
    assert admin.as_token(ADMIN_TOKEN).get("/tokens")[0] == 200
