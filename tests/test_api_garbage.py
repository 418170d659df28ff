"""Hypothesis-generated garbage against every route: never a 500, always a JSON {"Code","Message"} error.

Bodies start from a valid document for the route and get fields replaced by arbitrary JSON, removed
or added, so the garbage reaches deep into validation instead of stopping at the first check.
"""
import copy
import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ADMIN_TOKEN, DEMO_CONTRACT

REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}, "received_at": "2026-11-20T10:00:00+08:00"}
EVENT = {"type": "respond", "at": "2026-11-20T11:00:00+08:00", "note": "好的", "score": 5, "priority": "low",
         "channel": "portal"}
LISTING = {"contract_id": "acme", "status": "open", "breached": "true", "limit": "5", "next": "eyJ4IjoxfQ"}
VALID_BODIES = {
    ("PUT", "/contracts/{}"): DEMO_CONTRACT,
    ("POST", "/requests"): REQUEST,
    ("POST", "/requests/{}/events"): EVENT,
    ("POST", "/tokens"): {"role": "agent", "contract_id": "acme"},
}
ROUTES = [("GET", "/contracts/{}"), ("GET", "/requests"), ("GET", "/requests/{}"), ("DELETE", "/tokens/{}"),
          *VALID_BODIES]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
event_types = st.sampled_from(["respond", "progress", "await_customer", "customer_reply", "reprioritize",
                               "register", "resolve", "reopen", "rate", "received", "bogus"])


@st.composite
def mutated(draw, valid):
    """A valid document with a few fields replaced, removed or added (recursing into objects)."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(0, 3))):
        target, keys = doc, list(doc)
        while keys:
            key = draw(st.sampled_from(keys))
            if isinstance(target[key], dict) and target[key] and draw(st.booleans()):
                target, keys = target[key], list(target[key])
                continue
            action = draw(st.sampled_from(["replace", "remove", "add"]))
            if action == "replace":
                target[key] = draw(json_values)
            elif action == "remove":
                del target[key]
            else:
                target[draw(st.text(max_size=8))] = draw(json_values)
            break
    if "type" in doc and draw(st.booleans()):
        doc["type"] = draw(event_types)
    return doc


def bodies_for(route):
    valid = VALID_BODIES.get(route)
    garbage = st.one_of(json_values.map(json.dumps), st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
    if valid is None:
        return st.one_of(st.none(), garbage)
    return st.one_of(mutated(valid).map(lambda d: json.dumps(d, allow_nan=True)), garbage)


path_params = st.one_of(st.sampled_from(["acme", "REQUEST", "tok_x", "other"]), st.text(min_size=1, max_size=80))
tokens = st.sampled_from([ADMIN_TOKEN, "agent", "client", "", "tok_x.y", "Bearer", "\u00e9\u4e2d"])


@st.composite
def calls(draw):
    route = draw(st.sampled_from(ROUTES))
    query = draw(mutated(LISTING)) if route == ("GET", "/requests") else {}
    return route, draw(path_params), query, draw(bodies_for(route)), draw(tokens)


@pytest.fixture
def request_id(acme):
    admin, _, _ = acme
    return admin.post("/requests", REQUEST)[1]["request_id"]


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(call=calls())
def test_no_input_makes_any_route_answer_500(acme, request_id, call):
    admin, agent, client = acme
    (method, template), param, query, body, token = call
    caller = {"agent": agent, "client": client}.get(token) or admin.as_token(token)
    param = request_id if param == "REQUEST" else param
    path = template.format(quote(param, safe=""))
    if query:
        path += "?" + urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()})
    status, answer = caller.call(method, path, raw=body)
    assert status < 500, (method, path, body, answer)
    if status >= 400:
        assert {"Code", "Message"} <= set(answer) <= {"Code", "Message", "Errors"}, answer
