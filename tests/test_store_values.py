"""The store hands the use cases values, not PynamoDB items: what it reads is a frozen StoredRequest,
StoredEvent, ContractVersion... and what it writes it maps from the values the use cases decided. The
version a request was read at travels in its StoredRequest, so a write from a stale read still loses."""
import dataclasses
from datetime import timedelta

import pytest
from pynamodb.models import Model

from chalicelib import evaluation
from chalicelib.aws import records, store
from chalicelib.aws.tables import RequestModel
from chalicelib.core.evaluation import cached_fields
from chalicelib.core.facts import ContractVersion, StoredEvent, StoredRequest
from conftest import local

REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "description": "登录页报错 500", "requester": {"name": "张三", "email": "zhang@customer.example"}}


def _items_in(value):
    """Every PynamoDB item inside `value` (lists, tuples, dicts, generators)."""
    if isinstance(value, Model):
        return [value]
    if isinstance(value, dict):
        return [item for inner in value.values() for item in _items_in(inner)]
    if isinstance(value, list | tuple):
        return [item for inner in value for item in _items_in(inner)]
    return []


@pytest.fixture
def answered(acme, clock):
    """An answered request of acme with a noted event, and the nightly tally's day: (agent, request id)."""
    _, agent, _ = acme
    status, body = agent.post("/requests", REQUEST)
    assert status == 201, body
    clock.shift(timedelta(minutes=20))
    assert agent.post(f"/requests/{body['request_id']}/events", {"type": "respond", "note": "在查"})[0] == 200
    return agent, body["request_id"]


def test_every_read_of_requests_events_and_contracts_hands_back_values(answered):
    _, request_id = answered
    now = local(23, 11)
    reads = {
        "get_request": store.get_request(request_id),
        "get_requests": store.get_requests([request_id]),
        "events_before": store.events_before(request_id, None, 10),
        "latest_contract": store.latest_contract("acme"),
        "contract_version": store.contract_version("acme", 1),
        "requests_of_contract": store.requests_of_contract("acme"),
        "requests_by_deadline": store.requests_by_deadline("acme"),
        "requests_without_deadline": store.requests_without_deadline("acme"),
        "open_requests_page": store.open_requests_page("acme"),
        "requests_active_since": list(store.requests_active_since("acme", now - timedelta(days=1))),
        "requests_received_between": list(store.requests_received_between("acme", now - timedelta(days=1), now)),
        "an_open_request_with_priority": store.an_open_request_with_priority("acme", {"high"}),
        "tokens_page": store.tokens_page(10),
        "pending_jobs": store.pending_jobs(),
    }
    assert {name: _items_in(value) for name, value in reads.items() if _items_in(value)} == {}
    request = reads["get_request"]
    assert isinstance(request, StoredRequest) and isinstance(reads["latest_contract"], ContractVersion)
    assert all(isinstance(event, StoredEvent) for event in reads["events_before"])
    assert [event.type for event in request.events] == ["received", "respond"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.status = "resolved"  # a value: what changes is written through the store


def test_a_refresh_from_a_stale_read_writes_nothing_and_a_field_write_from_it_loses(answered, clock):
    """The StoredRequest carries the version it was read at: once an event is posted after the read,
    the scanner's best-effort refresh from that read is dropped, and a field write raises StaleWrite."""
    agent, request_id = answered
    stale = store.get_request(request_id)
    clock.shift(timedelta(minutes=10))
    assert agent.post(f"/requests/{request_id}/events", {"type": "resolve"})[0] == 200
    before = RequestModel.get(request_id)
    state = evaluation.state_of(stale, evaluation.policy_for(stale), local(23, 10, 40))
    store.refresh_cache(stale, cached_fields(state, checked_until=local(23, 10, 40)))
    after = RequestModel.get(request_id)
    assert (after.status, after.version, after.checked_until) == (before.status, before.version, None)
    assert after.status == "resolved"
    with pytest.raises(store.StaleWrite):
        store.update_request_fields(stale, {"subject": None})
    assert RequestModel.get(request_id).subject == REQUEST["subject"]


def test_a_request_read_from_dynamodbs_answer_is_the_one_pynamodb_would_build(acme, clock):
    """The month's replay maps each item from the Query's answer without building the PynamoDB item:
    every state a request can be in (open, answered, reprioritized, resolved with its frozen outcome,
    erased) maps to the same StoredRequest, cached fields and defaults included."""
    admin, agent, _ = acme
    ids = [agent.post("/requests", {**REQUEST, "requester": {"email": f"r{n}@customer.example"}})[1]["request_id"]
           for n in range(4)]
    clock.shift(timedelta(minutes=20))
    for request_id, bodies in zip(ids[1:], ([{"type": "respond"}], [{"type": "reprioritize", "priority": "low"}],
                                            [{"type": "respond"}, {"type": "resolve"}]), strict=True):
        for body in bodies:
            assert agent.post(f"/requests/{request_id}/events", body)[0] == 200
    assert admin.post("/contracts/acme/erasures", {"email": "r3@customer.example"})[0] == 200
    raws = RequestModel._get_connection().scan()["Items"]
    assert len(raws) == 4
    for raw in raws:
        built = records.stored_request(RequestModel.from_raw_data(raw))
        read = records.stored_request_of_raw(raw)
        assert read == built and read.stored == built.stored
    erased = next(records.stored_request_of_raw(raw) for raw in raws if "personal_data_erased_at" in raw)
    assert erased.status == "resolved" and erased.frozen_state and erased.requester is None
    # An item without the attributes PynamoDB gives a default reads them as those defaults.
    bare = {name: value for name, value in raws[0].items() if name not in ("breached", "closed_key")}
    assert records.stored_request_of_raw(bare) == records.stored_request(RequestModel.from_raw_data(bare))
    assert records.stored_request_of_raw(bare).stored == records.stored_request(RequestModel.from_raw_data(bare)).stored
