"""Amazon Connect contact records counted once per customer contact, pure: legs in, one interaction out.

Connect writes a contact record per leg of a customer's contact: a transfer to another agent or
queue, or a queued callback, starts a new ContactId. The legs share `InitialContactId` (the first
leg has none: its own ContactId is the customer contact's id); `PreviousContactId` and
`NextContactId` link each leg to its neighbours. Connect's own service level counts the customer
contact once, and so does this:

- offered at the first enqueue of any leg, answered when an agent first connects on any leg: the
  wait runs across queues and agents;
- a leg that TRANSFER / QUEUE_TRANSFER / CALLBACK legs continue (or that names a next leg not yet
  received) is no abandon; a leg that left for a number outside Connect before an agent answered
  (`TransferredToEndpoint`) is neither answered nor abandoned;
- a customer who asked to be called back (a CALLBACK leg follows) did not abandon: the interaction is
  a callback, answered when the agent connects on the callback leg, abandoned when that leg ends
  without one; reports leave callbacks out of the service level unless the channel counts them;
- a customer contact starts with an INBOUND leg (a chat or task also with API: StartChatContact and
  StartTaskContact are how a customer's chat or a task begins); one that began otherwise (OUTBOUND,
  API on a voice call, EXTERNAL_OUTBOUND, MONITOR, ...) is no offered contact, nor is one that never
  waited in a queue.

Legs arrive in any order: what is known is counted, and the interaction is computed again from all
the legs each time one arrives (a TRANSFER leg seen before the first leg counts from its own enqueue
until the first leg is there).
"""
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.core.service_level import Interaction

# Connect's channels and the contract channel (`interactions.<name>`) their contacts count under.
CHANNELS = {"VOICE": "phone", "CHAT": "chat", "TASK": "task", "EMAIL": "email"}
TRANSFERS = frozenset({"TRANSFER", "QUEUE_TRANSFER"})
CALLBACK = "CALLBACK"
CONTINUATIONS = TRANSFERS | {CALLBACK}
_STARTS = {"VOICE": {"INBOUND"}, "CHAT": {"INBOUND", "API"}, "TASK": {"INBOUND", "API"}, "EMAIL": {"INBOUND"}}


@dataclass(frozen=True)
class Leg:
    """What the count needs of one contact record."""

    contact_id: str
    method: str  # InitiationMethod
    channel: str  # Connect's Channel: VOICE, CHAT, TASK, EMAIL
    enqueued_at: datetime | None = None  # Queue.EnqueueTimestamp: None, never queued
    answered_at: datetime | None = None  # Agent.ConnectedToAgentTimestamp: None, no agent
    disconnected_at: datetime | None = None  # DisconnectTimestamp: None, still going
    previous_id: str | None = None
    next_id: str | None = None
    transferred_out: bool = False  # left for an endpoint outside Connect (TransferredToEndpoint)
    updated: str = ""  # LastUpdateTimestamp as sent: the later copy of a re-delivered record wins


def starts_a_contact(leg):
    """Whether a first leg makes its customer contact one the contact center was offered."""
    return leg.method in _STARTS.get(leg.channel, ())


def newer(leg, than):
    """Whether `leg` replaces `than`, the copy of the same record kept so far (at least once: copies
    come again, and late)."""
    return leg.updated >= than.updated


def customer_interaction(customer_contact_id, legs, channel):
    """The Interaction of a customer contact from the legs received so far ({ContactId: Leg}), counted
    under the contract channel `channel`; None when it is no offered contact."""
    first = legs.get(customer_contact_id)
    if first is not None and not starts_a_contact(first):
        return None
    measured = [leg for leg in legs.values() if leg is first or leg.method in CONTINUATIONS or starts_a_contact(leg)]
    queued = [leg for leg in measured if leg.enqueued_at is not None]
    if not queued:
        return None
    offered = min(leg.enqueued_at for leg in queued)
    interaction = Interaction(customer_contact_id, channel, offered)
    callbacks = [leg for leg in measured if leg.method == CALLBACK]
    answered = [leg.answered_at for leg in measured if leg.answered_at is not None and leg.method != CALLBACK]
    if answered:
        return replace(interaction, answered_at=min(answered))
    if callbacks:
        return replace(interaction, callback=True, **_outcome([leg for leg in callbacks if not _continued(leg, legs)]))
    ends = [leg for leg in measured if not _continued(leg, legs)]
    if any(leg.transferred_out for leg in ends):
        return interaction
    return replace(interaction, **_outcome(ends))


def _continued(leg, legs):
    """A leg that another leg of the customer contact continues: its end is no abandon. A next leg
    not received yet counts as continuing (so nothing is counted abandoned that may not be)."""
    following = legs.get(leg.next_id) if leg.next_id else None
    if leg.next_id and (following is None or following.method in CONTINUATIONS):
        return True
    return any(other.previous_id == leg.contact_id and other.method in CONTINUATIONS for other in legs.values())


def _outcome(ends):
    """answered_at or abandoned_at of the legs that end a customer contact: answered on one of them,
    else abandoned when every one of them is over (None while one goes on)."""
    answered = [leg.answered_at for leg in ends if leg.answered_at is not None]
    if answered:
        return {"answered_at": min(answered)}
    if ends and all(leg.disconnected_at is not None for leg in ends):
        return {"abandoned_at": max(leg.disconnected_at for leg in ends)}
    return {}
