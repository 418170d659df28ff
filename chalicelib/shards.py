"""Sharded scans: K scan invocations a minute, each with a disjoint share of the work and of SES's rate.

The due index and the outbox's pending index are written under DUE_SHARDS partition keys. With
SLA_SCAN_SHARDS = K (1 when unset; at most DUE_SHARDS), the shards fall into K groups, shard s into
group s mod K, and each minute K scans run, one per group. A scan of group g reads the due requests
and the retries of its shards only, drains the re-evaluation jobs whose contract falls to g, and
sends on its share of the account's send rate (pacing.Grid): disjoint work, and together no faster
than one scan at the full rate.

How they start: EventBridge invokes `scan_deadlines` once a minute, as before; that invocation
scans group 0 and hands every other group to an asynchronous invocation of its own function, the
event's `detail` naming the group. A hand-off Lambda refuses is scanned by the dispatcher itself, on
those groups' share of the rate, so no shard waits a minute because of it.
"""
import logging
import zlib
from dataclasses import dataclass

from chalicelib import settings
from chalicelib.aws import functions
from chalicelib.aws.store import SCAN_SHARDS as DUE_SHARDS
from chalicelib.logs import log_event
from chalicelib.pacing import Grid

COUNT_VARIABLE = "SLA_SCAN_SHARDS"
logger = logging.getLogger("sla_clock.shards")


@dataclass(frozen=True)
class Share:
    """The shard groups one scan takes (`groups`) out of `of`."""
    groups: frozenset = frozenset({0})
    of: int = 1

    @property
    def due_shards(self):
        """The due index's (and the pending index's) shards of these groups."""
        return [str(shard) for shard in range(DUE_SHARDS) if shard % self.of in self.groups]

    def takes_job(self, subject):
        """Whether the re-evaluation job of contract `subject` falls to these groups (a stable hash)."""
        return zlib.crc32(subject.encode("utf-8")) % self.of in self.groups

    def send_rate(self, account_rate):
        """This share of the account's emails a second."""
        return account_rate * len(self.groups) / self.of

    def grid(self, account_rate):
        """The send instants of this share (None for the whole rate: any instant is this scan's)."""
        return None if self.of == 1 else Grid(account_rate, self.groups, self.of)

    def as_detail(self):
        return {"shard_groups": sorted(self.groups), "shard_count": self.of}


WHOLE = Share()


def configured_count():
    """K, the scans a minute, from SLA_SCAN_SHARDS: 1 when unset. A value that is not a whole number
    from 1 to DUE_SHARDS is logged at ERROR and the nearest usable one taken (1 when unreadable)."""
    raw = settings.current().scan_shards
    if raw is None:
        return 1
    try:
        count = int(raw)
    except ValueError:
        count = 1
    usable = min(max(count, 1), DUE_SHARDS)
    if str(usable) != raw:
        log_event(logger, f"{COUNT_VARIABLE} must be a whole number from 1 to {DUE_SHARDS}", level=logging.ERROR,
                  value=raw, used=usable)
    return usable


def group_events(event, count):
    """The events of the minute's K scans: `event` (EventBridge's) with `detail` naming one group each."""
    return [{**event, "detail": Share(frozenset({group}), count).as_detail()} for group in range(count)]


def share_of(event):
    """The share an invocation's `event` names in its detail; None for the scheduled one, which names
    none. A malformed share is refused (ValueError naming the field): it is our own hand-off's."""
    detail = event.get("detail") or {}
    if "shard_groups" not in detail and "shard_count" not in detail:
        return None
    count, groups = detail.get("shard_count"), detail.get("shard_groups")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= DUE_SHARDS:
        raise ValueError(f"detail.shard_count must be a whole number from 1 to {DUE_SHARDS}, not {count!r}")
    if (not isinstance(groups, list) or not groups
            or not all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < count for g in groups)):
        raise ValueError(f"detail.shard_groups must list groups from 0 to {count - 1}, not {groups!r}")
    return Share(frozenset(groups), count)


def take(event, function_name):
    """This invocation's share of the minute's scan. The scheduled invocation hands groups 1..K-1 to
    asynchronous invocations of `function_name` (itself) and keeps group 0, and any group whose
    hand-off Lambda refused; an invocation handed a group keeps that."""
    named = share_of(event)
    if named is not None:
        return named
    count = configured_count()
    kept = {0}
    for group, handed in enumerate(group_events(event, count)[1:], start=1):
        try:
            functions.invoke_async(function_name, handed)
        except Exception as exc:  # noqa: BLE001 - the dispatcher scans a group it could not hand off
            kept.add(group)
            log_event(logger, "scan could not hand off a shard group; scanning it here", level=logging.ERROR,
                      exc_info=exc, shard_group=group, error=f"{type(exc).__name__}: {exc}")
    return Share(frozenset(kept), count)
