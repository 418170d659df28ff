"""The event registry (chalicelib/core/events.py): each event type declared once, and every list of
event types, roles, keys, codes and emails elsewhere equal to what it declares. End to end: an
event's details reach its record and only the clock's part of them its request's timeline."""
import dataclasses
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from test_scanner import ADMIN, PROVIDER, REQUESTER, create

from chalicelib import openapi, tokens
from chalicelib.aws import timeline_codec
from chalicelib.aws.tables import EventModel, RequestModel
from chalicelib.core import alerts, clock, emails, events, facts, intake, personal_data, webhook_rules
from chalicelib.core.emails import LANGUAGES
from chalicelib.core.events import TYPES, Details
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT, local

ROOT = Path(__file__).resolve().parent.parent

# The codes every stored timeline holds: changing one would re-read history as other events.
STORED_CODES = {"received": 0, "respond": 1, "progress": 2, "await_customer": 3, "customer_reply": 4,
                "reprioritize": 5, "register": 6, "resolve": 7, "reopen": 8, "rate": 9}


def test_the_timeline_codes_are_the_ones_stored_and_each_type_has_its_own():
    assert {name: t.code for name, t in TYPES.items() if name in STORED_CODES} == STORED_CODES
    assert sorted(t.code for t in TYPES.values()) == list(range(len(TYPES)))
    assert timeline_codec.TYPE_CODES == events.BY_CODE
    assert all(events.BY_CODE[t.code] == name for name, t in TYPES.items())


def test_a_timeline_stores_each_type_as_its_declared_code_and_reads_it_back():
    at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    timeline = tuple(facts.Event(seq, name, at) for seq, name in enumerate(reversed(TYPES), start=1))
    packed = timeline_codec.pack(timeline)
    payload = zlib.decompress(packed[1:])  # the entry count (4 bytes), then one code per entry
    assert payload[4:4 + len(timeline)] == bytes(TYPES[event.type].code for event in timeline)
    assert timeline_codec.unpack(packed) == timeline


def test_received_is_made_by_the_request_and_every_other_type_is_posted_by_someone():
    assert not TYPES["received"].postable
    assert events.POSTABLE == tuple(name for name in TYPES if name != "received")
    for name in events.POSTABLE:
        assert TYPES[name].posted_by, name
        assert TYPES[name].posted_by <= set(tokens.ROLES), name
        assert events.ADMIN in TYPES[name].posted_by, f"admins may post every type, not {name}"


def test_intake_takes_its_types_roles_and_keys_from_the_registry():
    assert intake.POSTABLE_EVENTS == events.POSTABLE
    assert dict(intake.EVENTS_BY_ROLE) == {role: {n for n in events.POSTABLE if role in TYPES[n].posted_by}
                                           for role in tokens.ROLES}
    assert intake.EVENTS_BY_ROLE["client"] == {"customer_reply", "reopen", "rate"}
    assert intake.EVENTS_BY_ROLE["agent"] == set(events.POSTABLE) - {"rate"}
    assert dict(intake.EVENT_ONLY_KEYS) == {d.name: name for name, t in TYPES.items() for d in t.details}
    assert len(intake.EVENT_ONLY_KEYS) == sum(len(t.details) for t in TYPES.values()), "a detail has one type"
    assert dict(intake.EVENT_ONLY_KEYS) == {"priority": "reprioritize", "score": "rate", "channel": "register"}
    assert set(intake.EventInput.model_fields) == {"type", "at", "note"} | set(intake.EVENT_ONLY_KEYS)


def test_every_detail_a_type_declares_is_parsed_into_the_event_intake_hands_back():
    """A declared detail that intake does not parse would be dropped without a word."""
    assert set(events.DETAIL_OWNER) <= set(intake.NewEvent.__annotations__)


def test_the_clock_replays_the_registrys_types_and_reads_exactly_its_clock_details():
    assert facts.EVENT_TYPES == clock.EVENT_TYPES == tuple(TYPES)
    event_fields = {field.name for field in dataclasses.fields(facts.Event)} - {"seq", "type", "at"}
    assert set(events.CLOCK_DETAILS) == event_fields
    assert timeline_codec.OPTIONAL == events.CLOCK_DETAILS
    assert events.WITHOUT_CLOCK_EFFECT == {"received"}


def test_each_email_an_event_sends_has_its_templates_and_phrases_in_every_language():
    senders = {name: t for name, t in TYPES.items() if t.email}
    assert {name: t.email for name, t in senders.items()} == {
        "received": "acknowledgement", "respond": "respond", "progress": "progress",
        "await_customer": "await_customer", "resolve": "resolve"}
    assert all(t.email_to == () for t in TYPES.values() if not t.email)
    for name, t in senders.items():
        assert t.email_to and set(t.email_to) <= {events.REQUESTER, events.PROVIDER, events.ADMINS}, name
        assert t.email in emails.KINDS and t.email in emails.REQUIRED_KEYS, name
        context = {key: "x" for key in emails.REQUIRED_KEYS[t.email]}
        for language in LANGUAGES:
            rendered = emails.render(t.email, language, context | {"note": "note-from-the-agent"})
            assert "note-from-the-agent" in rendered.text and "note-from-the-agent" in rendered.html, (name, language)
    assert emails.EVENT_KINDS == events.EMAIL_KINDS
    assert set(emails.KINDS) == set(events.EMAIL_KINDS) | set(emails.ALERT_KINDS)


def test_the_emails_written_to_the_requester_carry_the_reply_to_and_no_other_event_email_does():
    to_requester = {t.email for t in TYPES.values() if events.REQUESTER in t.email_to}
    assert to_requester == set(events.REQUESTER_EMAIL_KINDS)
    assert set(emails.CUSTOMER_KINDS) & set(events.EMAIL_KINDS) == to_requester


def test_the_webhooks_events_announce_are_among_those_a_contract_may_subscribe_to():
    announced = {name: t.webhook for name, t in TYPES.items() if t.webhook}
    assert announced == {"received": "received", "resolve": "resolved"}
    assert set(webhook_rules.EVENTS) == set(announced.values()) | set(emails.ALERT_KINDS)


def test_the_alerts_rendered_anew_on_retry_are_the_ones_the_alerts_can_rebuild():
    """RECHECKED_KINDS is what the scanner and erasure treat as "rebuilt from the request at each
    attempt": alerts.current_notification must know every one of them (an unknown key raises)."""
    assert emails.RECHECKED_KINDS == emails.ALERT_KINDS
    assert personal_data.RECHECKED_KINDS is emails.RECHECKED_KINDS
    with pytest.raises(ValueError, match="not a provider alert key"):
        alerts.current_notification(None, None, None, "acknowledgement", None)
    keys = {"breach": "breach|resolution|0", "warning": "warning|resolution|0|0.8", "progress_reminder":
            "progress_reminder|0"}
    assert set(keys) == set(emails.RECHECKED_KINDS)
    received = local(23, 10)
    policy = parse_contract(DEMO_CONTRACT)[1]
    just_received = clock.evaluate(policy, facts.RequestFacts("high", True, received),
                                   [facts.Event(1, "received", received)], received)
    for key in keys.values():  # nothing has happened yet: no alert holds
        assert alerts.current_notification(policy, None, just_received, key, received) is None


def test_the_specs_event_type_enums_are_the_registrys():
    schemas = openapi.document()["components"]["schemas"]
    assert tuple(schemas["EventInput"]["properties"]["type"]["enum"]) == events.POSTABLE
    assert schemas["Event"]["properties"]["type"] == {"$ref": "#/components/schemas/EventType"}
    assert tuple(schemas["EventType"]["enum"]) == events.NAMES
    detail_keys = set(events.DETAIL_OWNER)
    assert detail_keys <= set(schemas["EventInput"]["properties"]) and detail_keys <= set(
        schemas["Event"]["properties"])


WHO = {"any": set(tokens.ROLES), "agent, admin": {"agent", "admin"}, "client, admin": {"client", "admin"}}


def test_api_md_lists_every_postable_type_with_the_roles_that_may_post_it():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("### `POST /requests/{request_id}/events`", 1)[1].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([a-z, ]+) \|", section, flags=re.MULTILINE))
    assert tuple(rows) == events.POSTABLE
    assert {name: WHO[who] for name, who in rows.items()} == {name: TYPES[name].posted_by for name in events.POSTABLE}


def test_details_keep_the_fields_the_type_declares_that_are_set():
    parsed = intake.NewEvent(type="reprioritize", at=None, note="n", priority="high", score=None)
    details = Details.of("reprioritize", parsed)
    assert dict(details.values) == {"priority": "high"} and details.for_clock == {"priority": "high"}
    assert details.stored() == {"priority": "high"}
    assert Details.of("register", intake.NewEvent(type="register", at=None)).stored() is None
    # A field another type carries is not this type's detail, even when the source has it set.
    assert Details.of("respond", parsed).stored() is None


def test_the_timeline_keeps_only_the_details_the_clock_reads():
    """A detail the clock does not read (say an escalation's reason) stays in the event's record."""
    at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    details = Details(MappingProxyType({"priority": "high", "reason": "x"}))
    timeline = (facts.Event(1, "received", at), facts.Event(2, "reprioritize", at, **details.for_clock))
    payload = zlib.decompress(timeline_codec.pack(timeline)[1:])
    assert payload[4 + 9 * len(timeline):] == b'{"2":{"priority":"high"}}'
    assert timeline_codec.unpack(timeline_codec.pack(timeline)) == timeline


def test_an_events_details_are_stored_with_it_and_its_clock_details_in_the_timeline(acme, mailbox, clock):
    _, agent, client = acme
    request_id = create(agent)
    for body in ({"type": "reprioritize", "priority": "urgent", "note": "VIP"}, {"type": "respond"},
                 {"type": "resolve"}):
        status, document = agent.post(f"/requests/{request_id}/events", body)
        assert status == 200, document
    status, document = client.post(f"/requests/{request_id}/events", {"type": "rate", "score": 4})
    assert status == 200, document
    records = {e.seq: e for e in EventModel.query(request_id)}
    assert {seq: (e.type, e.details, e.note) for seq, e in records.items()} == {
        1: ("received", None, None), 2: ("reprioritize", {"priority": "urgent"}, "VIP"), 3: ("respond", None, None),
        4: ("resolve", None, None), 5: ("rate", {"score": 4}, None)}
    timeline = RequestModel.get(request_id).timeline
    assert [(e.seq, e.type, e.priority, e.score) for e in timeline] == [
        (1, "received", None, None), (2, "reprioritize", "urgent", None), (3, "respond", None, None),
        (4, "resolve", None, None), (5, "rate", None, 4)]
    assert [e.get("priority") or e.get("score") for e in document["events"]] == [None, "urgent", None, None, 4]


def test_each_event_email_goes_where_its_type_says(acme, mailbox, clock):
    _, agent, client = acme
    request_id = create(agent)
    for body, poster in (({"type": "respond"}, agent), ({"type": "await_customer"}, agent),
                         ({"type": "customer_reply"}, client), ({"type": "reprioritize", "priority": "urgent"}, agent),
                         ({"type": "resolve"}, agent), ({"type": "reopen"}, client)):
        assert poster.post(f"/requests/{request_id}/events", body)[0] == 200
    assert mailbox.to(PROVIDER) == [] and mailbox.to(ADMIN) == []
    kinds = [str(m["X-SLA-Notification"]).split("|", 1)[1] for m in mailbox.to(REQUESTER)]
    assert kinds == ["acknowledgement", "event|2", "event|3", "event|6"]
