"""The stored form of a request's clock-relevant timeline: packed columns, zlib-compressed.

In memory a timeline is a sequence of the clock's Events, seq counting 1, 2, 3...; read back, a
tuple of them with their instants in UTC. On the item it is one binary value: the
format byte, then zlib of the entry count, one type code per entry, each entry's microseconds since
the previous one (signed 64-bit little-endian), and the few optional fields as JSON keyed by
position. About five bytes an event: 10,000 events stay far below DynamoDB's 400 KB item limit,
every instant round-trips exactly, and decoding runs in C but for one Event per entry.
"""
import json
import struct
import zlib
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from pynamodb.attributes import Attribute
from pynamodb.constants import BINARY

from chalicelib.core import events
from chalicelib.core.facts import Event

FORMAT = 1  # first byte of the stored value; a new layout takes a new number
TYPE_CODES = events.BY_CODE  # each type's stored code is declared with it, never renumbered
OPTIONAL = events.CLOCK_DETAILS  # the details the clock reads; the others stay in the event's record
_CODE_OF = {name: code for code, name in enumerate(TYPE_CODES)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NO_DETAILS = {}


def pack(timeline):
    micros, optional = [], {}
    for position, event in enumerate(timeline, start=1):
        if event.seq != position:
            raise ValueError(f"timeline event {position} has seq {event.seq}: seqs count from 1 without gaps")
        micros.append((event.at - _EPOCH) // _MICROSECOND)
        extra = {name: value for name in OPTIONAL if (value := getattr(event, name)) is not None}
        if extra:
            optional[position] = extra
    count = len(micros)
    deltas = [b - a for a, b in zip([0, *micros], micros, strict=False)]
    payload = b"".join((
        struct.pack("<I", count),
        bytes(_CODE_OF[event.type] for event in timeline),
        struct.pack(f"<{count}q", *deltas),
        json.dumps(optional, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    ))
    return bytes([FORMAT]) + zlib.compress(payload)


def unpack(value):
    if value[0] != FORMAT:
        raise ValueError(f"unknown timeline format {value[0]}")
    payload = zlib.decompress(value[1:])
    (count,) = struct.unpack_from("<I", payload)
    codes = payload[4:4 + count]
    micros = accumulate(struct.unpack_from(f"<{count}q", payload, 4 + count))
    optional = {int(position): extra for position, extra in json.loads(payload[4 + 9 * count:]).items()}
    return tuple(Event(seq, TYPE_CODES[code], _EPOCH + at * _MICROSECOND, **optional.get(seq, _NO_DETAILS))
                 for seq, code, at in zip(range(1, count + 1), codes, micros, strict=True))


class TimelineAttribute(Attribute):
    """A timeline (the clock's Events, oldest first) stored as one binary value."""

    attr_type = BINARY

    def serialize(self, value):
        return pack(value)

    def deserialize(self, value):
        return unpack(value)
