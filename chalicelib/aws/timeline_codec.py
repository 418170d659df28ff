"""The stored form of a request's clock-relevant timeline: packed columns, zlib-compressed.

In memory a timeline is a list of entries {"seq", "type", "at" (aware datetime), optional
"priority", "score", "channel"}, seq counting 1, 2, 3... On the item it is one binary value: the
format byte, then zlib of the entry count, one type code per entry, each entry's microseconds since
the previous one (signed 64-bit little-endian), and the few optional fields as JSON keyed by
position. About five bytes an event: 10,000 events stay far below DynamoDB's 400 KB item limit,
every instant round-trips exactly, and decoding runs in C but for one small dict per entry.
"""
import json
import struct
import zlib
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from pynamodb.attributes import Attribute
from pynamodb.constants import BINARY

from chalicelib.core import events

FORMAT = 1  # first byte of the stored value; a new layout takes a new number
TYPE_CODES = events.BY_CODE  # each type's stored code is declared with it, never renumbered
OPTIONAL = events.CLOCK_DETAILS  # the details the clock reads; the others stay in the event's record
_CODE_OF = {name: code for code, name in enumerate(TYPE_CODES)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def pack(entries):
    micros, optional = [], {}
    for position, entry in enumerate(entries, start=1):
        if entry["seq"] != position:
            raise ValueError(f"timeline entry {position} has seq {entry['seq']}: seqs count from 1 without gaps")
        micros.append((entry["at"] - _EPOCH) // _MICROSECOND)
        extra = {name: entry[name] for name in OPTIONAL if name in entry}
        if extra:
            optional[position] = extra
    count = len(micros)
    deltas = [b - a for a, b in zip([0, *micros], micros, strict=False)]
    payload = b"".join((
        struct.pack("<I", count),
        bytes(_CODE_OF[entry["type"]] for entry in entries),
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
    optional = json.loads(payload[4 + 9 * count:])
    entries = [{"seq": seq, "type": TYPE_CODES[code], "at": _EPOCH + at * _MICROSECOND}
               for seq, code, at in zip(range(1, count + 1), codes, micros, strict=True)]
    for position, extra in optional.items():
        entries[int(position) - 1].update(extra)
    return entries


class TimelineAttribute(Attribute):
    """A timeline (list of entries) stored as one binary value."""

    attr_type = BINARY

    def serialize(self, value):
        return pack(value)

    def deserialize(self, value):
        return unpack(value)
