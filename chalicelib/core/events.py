"""The event types of a request, each declared once: who may post it, what it carries, who is told,
and the code its timeline stores. Everything else reads this registry: the types the clock replays
and intake accepts, the roles allowed to post each, the keys an event body may hold, the timeline's
codes and packed fields, and the emails and webhooks an event sends.

An event's type is a fact of the request; what the clock does with it is the clock's rule
(chalicelib.core.clock), and an event the clock has no rule for is declared `moves_clock=False`.
"""
from dataclasses import dataclass
from types import MappingProxyType

CLIENT, AGENT, ADMIN = "client", "agent", "admin"
STAFF = frozenset({AGENT, ADMIN})
ANYONE = frozenset({CLIENT, AGENT, ADMIN})
# Who an event's email goes to: the request's requester, or one of the contract's notify lists.
REQUESTER, PROVIDER, ADMINS = "requester", "notify.provider", "notify.admins"
# Every posted event may carry these besides its own details; the note is kept apart from the
# details because it is personal data (erasure removes it).
POSTED_KEYS = ("type", "at", "note")


@dataclass(frozen=True)
class Detail:
    """A field an event type carries. `clock`: the clock reads it, so it is packed in the request's
    timeline (and is a field of facts.Event) as well as stored with the event's record."""

    name: str
    clock: bool = False


@dataclass(frozen=True)
class EventType:
    name: str
    code: int  # stored in every request's packed timeline: never renumber, never reuse
    posted_by: frozenset = frozenset()  # roles that may post it; empty: not postable
    details: tuple = ()  # Detail, ...
    email: str | None = None  # the email kind it sends (templates/<language>/<kind>.*), if any
    email_to: tuple = ()  # REQUESTER, PROVIDER and/or ADMINS
    webhook: str | None = None  # the webhook event it announces, if any
    moves_clock: bool = True  # False: the clock passes over it (its time still orders the timeline)
    effect: str = ""  # what it does to the request, in the API's words (docs/api.md's table of event types)

    @property
    def postable(self):
        return bool(self.posted_by)


_DECLARED = (
    # Made by the request's creation, never posted; its effect is in the request's facts.
    EventType("received", 0, email="acknowledgement", email_to=(REQUESTER,), webhook="received",
              moves_clock=False),
    EventType("respond", 1, STAFF, email="respond", email_to=(REQUESTER,),
              effect="the first response: meets `first_response`, starts the progress cycle"),
    EventType("progress", 2, STAFF, email="progress", email_to=(REQUESTER,),
              effect="a progress update: meets the running cycle, starts the next"),
    EventType("await_customer", 3, STAFF, email="await_customer", email_to=(REQUESTER,),
              effect="pauses every running clock (status `awaiting_customer`)"),
    # Customers, through their client systems, reply, reopen and rate; agents run the request;
    # admins may do everything.
    EventType("customer_reply", 4, ANYONE, effect="resumes; deadlines move by the paused business time"),
    EventType("reprioritize", 5, STAFF, details=(Detail("priority", clock=True),),
              effect="recomputes every deadline from the clock start with the new priority's targets"),
    EventType("register", 6, STAFF, details=(Detail("channel", clock=True),),
              effect="a request from a non-designated channel is recorded on a designated one: its clock starts"),
    EventType("resolve", 7, STAFF, email="resolve", email_to=(REQUESTER,), webhook="resolved",
              effect="meets `resolution` (and `first_response` if still open); status `resolved`"),
    EventType("reopen", 8, ANYONE,
              effect=("status `open`; the resolution clock runs again from where it stopped (see [reopening after a "
                      "contract change](#reopening-after-a-contract-change))")),
    EventType("rate", 9, frozenset({CLIENT, ADMIN}), details=(Detail("score", clock=True),),
              effect="customer satisfaction, once per resolution of a resolved request"),
)
TYPES = MappingProxyType({t.name: t for t in _DECLARED})

NAMES = tuple(TYPES)  # in code order
POSTABLE = tuple(name for name, t in TYPES.items() if t.postable)
BY_ROLE = MappingProxyType({role: frozenset(name for name in POSTABLE if role in TYPES[name].posted_by)
                            for role in (CLIENT, AGENT, ADMIN)})
# Each detail key belongs to the one type that carries it: sent with another type it is refused.
DETAIL_OWNER = MappingProxyType({d.name: t.name for t in _DECLARED for d in t.details})
CLOCK_DETAILS = tuple(d.name for t in _DECLARED for d in t.details if d.clock)
# The email kinds events send, and those of them written to the requester (backdated ones are skipped).
EMAIL_KINDS = tuple(t.email for t in _DECLARED if t.email)
REQUESTER_EMAIL_KINDS = tuple(t.email for t in _DECLARED if REQUESTER in t.email_to)
WITHOUT_CLOCK_EFFECT = frozenset(name for name, t in TYPES.items() if not t.moves_clock)


def _by_code():
    by_code = {t.code: t.name for t in _DECLARED}
    if sorted(by_code) != list(range(len(_DECLARED))):
        raise ValueError("event type codes must run 0, 1, 2, ... without gaps or repeats")
    return tuple(by_code[code] for code in range(len(by_code)))


BY_CODE = _by_code()  # the type names indexed by their timeline code


@dataclass(frozen=True)
class Details:
    """What one event carries besides its type, time, author and note: the fields its type declares
    (EventType.details) that are set. Stored with the event's record; the clock's part of them
    (`for_clock`) goes into the request's timeline and its facts.Event too."""

    values: MappingProxyType

    @classmethod
    def of(cls, type_name, source):
        """The details of an event of type `type_name`, read from `source`'s attributes (a parsed event
        body): those its type declares, when set."""
        found = {d.name: getattr(source, d.name, None) for d in TYPES[type_name].details}
        return cls(MappingProxyType({name: value for name, value in found.items() if value is not None}))

    @property
    def for_clock(self):
        return {name: value for name, value in self.values.items() if name in CLOCK_DETAILS}

    def stored(self):
        """The record's `details` attribute: a plain dict, None when there are none."""
        return dict(self.values) or None
