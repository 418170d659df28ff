"""Service level of phone and chat interactions (see docs/clock.md), pure: interactions in, counts out.

Per channel and local day, of the interactions offered that day **inside the channel's hours**
("business": the contract calendar's working periods, a lunch break excluded; "24x7": always):
- offered; answered; answered within the channel's `answer_within` (wait <= threshold);
- abandoned, and of those abandoned within the threshold (short abandons: the caller gave up before
  the promise was due, so they count neither for nor against it);
- the answer waits, as a sum (for the average) and a histogram (for the 90th percentile), so days
  add up to a month exactly.

Queued callbacks (the customer asked to be called back rather than wait) are counted apart
(`callbacks`) and left out of everything else, unless the channel says `"callbacks": "count"`: then
they are offered too, answered when the callback reaches an agent, waiting from the first enqueue.

Service level = answered within ÷ (answered + abandoned after the threshold). A wait is wall-clock
time from offered to answered: the caller waits on the wall clock whatever the calendar says.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

_ONE_US = timedelta(microseconds=1)
_US_PER_S = 1_000_000
# Histogram buckets: whole seconds up to 10 minutes, whole minutes beyond, all waits past a day in
# the last bucket. A day's histogram stays a few thousand keys at most however many calls it holds.
EXACT_UP_TO_S = 600
LONGEST_S = 24 * 3600
COUNTS = ("offered", "answered", "answered_within", "abandoned", "abandoned_within", "callbacks")


@dataclass(frozen=True)
class Interaction:
    id: str
    channel: str
    offered_at: datetime
    answered_at: datetime | None = None
    abandoned_at: datetime | None = None
    callback: bool = False  # the customer asked to be called back: answered or abandoned on the callback


def wait_bucket(wait_us):
    """The histogram key of a wait: its whole seconds rounded up (a 60.2 s wait is not "within 60 s"),
    to the minute above 10 minutes, at most a day."""
    seconds = -(-wait_us // _US_PER_S)
    if seconds > EXACT_UP_TO_S:
        seconds = min(-(-seconds // 60) * 60, LONGEST_S)
    return seconds


def empty():
    return {**dict.fromkeys(COUNTS, 0), "answer_us_total": 0, "answer_seconds": {}}


def count_day(rules, calendar, start, end, interactions):
    """{channel: counts} of the interactions offered in [start, end) inside each channel's hours.
    `rules`: Policy.interactions; interactions of a channel the contract has no rule for are ignored."""
    days = {channel: empty() for channel in rules}
    for interaction in interactions:
        rule = rules.get(interaction.channel)
        offered = interaction.offered_at
        if rule is None or not start <= offered < end:
            continue
        if rule.hours == "business" and not calendar.is_open(offered):
            continue
        counts, limit = days[interaction.channel], rule.answer_within.microseconds
        if interaction.callback:
            counts["callbacks"] += 1
            if rule.callbacks != "count":
                continue
        counts["offered"] += 1
        if interaction.answered_at is not None:
            wait = (interaction.answered_at - offered) // _ONE_US
            counts["answered"] += 1
            counts["answered_within"] += wait <= limit
            counts["answer_us_total"] += wait
            key = str(wait_bucket(wait))
            counts["answer_seconds"][key] = counts["answer_seconds"].get(key, 0) + 1
        elif interaction.abandoned_at is not None:
            counts["abandoned"] += 1
            counts["abandoned_within"] += (interaction.abandoned_at - offered) // _ONE_US <= limit
    return days


def merge(many):
    """Counts of several days (or several stored tallies) added up, channel by channel."""
    total = {}
    for day in many:
        for channel, counts in day.items():
            into = total.setdefault(channel, empty())
            for key in (*COUNTS, "answer_us_total"):
                into[key] += counts.get(key, 0)  # tallies stored before `callbacks` lack it
            for key, n in counts["answer_seconds"].items():
                into["answer_seconds"][key] = into["answer_seconds"].get(key, 0) + n
    return total


def service_level(counts, digits=4):
    """answered within ÷ (answered + abandoned after the threshold); None without any of those."""
    whole = counts["answered"] + counts["abandoned"] - counts["abandoned_within"]
    return round(counts["answered_within"] / whole, digits) if whole else None


def p90_seconds(histogram):
    """The 90th percentile (nearest rank) of the answer waits, in the histogram's seconds."""
    n = sum(histogram.values())
    if not n:
        return None
    rank, seen = math.ceil(0.9 * n), 0
    for seconds in sorted(map(int, histogram)):
        seen += histogram[str(seconds)]
        if seen >= rank:
            break
    return seconds


def summary(counts):
    """What reports show of a channel: the counts, average and p90 answer seconds."""
    answered = counts["answered"]
    return {
        "offered": counts["offered"],
        "answered": answered,
        "answered_within": counts["answered_within"],
        "abandoned": counts["abandoned"],
        "callbacks": counts.get("callbacks", 0),
        "average_answer_seconds": round(counts["answer_us_total"] / answered / _US_PER_S, 1) if answered else None,
        "p90_answer_seconds": p90_seconds(counts["answer_seconds"]),
    }


def day_columns(counts):
    """What a report's day shows of a channel."""
    return {"offered": counts["offered"], "answered": counts["answered"],
            "answered_within": counts["answered_within"], "abandoned": counts["abandoned"],
            "service_level": service_level(counts), "callbacks": counts.get("callbacks", 0)}
