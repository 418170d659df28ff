"""Cost of a long-lived request: what posting an event (and reading the request) costs at 10, 1,000
and 10,000 events, what scanning a request neglected for 1, 30 and 180 days costs, how large a
request neglected for 1, 30, 180 and 365 days is once resolved, and what reading a request the
scanner has alerted on for 1 and 30 days costs.

    .venv/bin/python bench/age_bench.py [--sizes 10 1000 10000] [--rounds 5] [--neglect 1 30 180]
                                        [--resolved-after 1 30 180 365] [--scanned-for 1 30]

In-process against moto (no network). Each size gets a fresh moto account holding one high-priority
request whose history (respond, progress updates, now and then a wait for the customer, at irregular
times 45 minutes apart on average) is written straight to the tables (tests/factories.long_request), so building
10,000 events takes seconds. Then each round posts one `progress` event with a note, a minute after
the previous one, through the service layer the API route calls, and reads the request back.

Every AWS call is counted at botocore's `BaseClient._make_api_call`, whatever code path makes it:
DynamoDB calls, the items their answers carry, and the time spent inside them (moto). Targets:
DynamoDB calls per post and per read equal at every size; items read equal at every size from one
page of events (requests.EVENTS_PAGE) up, and no more below it. Wall time is reported,
not gated: moto copies every table a transaction touches, and decoding and replaying the timeline
(the pure clock) is linear, if cheap.

The history is built without outbox entries, so every size starts with none: what this measures is
the timeline (a request's `notifications` are the fourth measurement's).

The script is a list of measurements, each returning a Table; `main` runs them and prints each.
A second measurement scans a request answered 1, 30 or 180 days ago and never updated since: the
catch-up scan after the scanner was down all that time, then the scan at its next check. Targets:
DynamoDB calls, writes and notifications created equal whatever the neglect (one catch-up alert per
metric, not one per missed cycle).

A third resolves, through the service layer the API route calls, a request answered 1, 30, 180 or 365
days earlier and never updated since, on a 10-minute progress cycle: urgent (24x7), and for
comparison high priority on the contract's business hours. It reports the milestones the outcome
holds, the size of the frozen outcome (`frozen_state`, JSON) and of the whole request item as DynamoDB
counts it (attribute names plus values), and the CPU time of the resolve (moto's included). Targets:
on the 24x7 clock the frozen outcome is flat (within 1 KB at every age); every resolve is written
(moto refuses an item past 400 KB in a transaction, as DynamoDB does) and every item stays below a
tenth of that limit.

A fourth reads (GET /requests/{id}, through the service layer) an urgent request on a 10-minute
progress cycle, answered and then neglected while the scanner ran on its schedule: after a day (the
scans of that day, each at the first minute something was due) and after 30 days (the first day's
progress alerts, reminders and warnings again for each later day, numbered and timed as the scanner
would have made them; scanning 30 days in moto, whose index queries read the whole table, takes
hours). It reports the notifications stored, what the whole list would weigh as JSON, and the
DynamoDB calls, items read and size of the document. Targets: calls and items read equal at both
ages, the document within 1 KB, and far below Lambda's 6 MB answer.
"""
import argparse
import copy
import gc
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import common  # first: it sets the environment the table models read at import
import factories
from botocore.client import BaseClient

from chalicelib import contracts, evaluation, requests, scanner
from chalicelib.aws import outbox, records, store
from chalicelib.aws.tables import NotificationModel, RequestModel
from chalicelib.budget import Budget
from chalicelib.core.documents import notification_document
from chalicelib.core.evaluation import cached_fields
from chalicelib.core.facts import Event

# moto answers GetSendQuota with the sandbox's 1 email a second, at which a catch-up's four emails would
# be paced over 3 s of waiting; a stage configures its real rate, and so does the bench.
os.environ.setdefault(outbox.SEND_RATE_VARIABLE, "50")

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai: the last event of the history
SCANNED_AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # Wednesday 10:00: 1 day before it is a working day too


@dataclass
class Table:
    title: str
    columns: list
    rows: list
    verdict: str
    passed: bool


class CallCounter:
    """Every botocore call while active: calls per (service, operation), DynamoDB items read, and the
    time spent inside the calls."""

    def __init__(self):
        self.calls, self.items, self.inside_s = Counter(), 0, 0.0
        self._original = BaseClient._make_api_call

    def __enter__(self):
        counter, original = self, self._original

        def counting(client, operation, params):
            started = time.perf_counter()
            try:
                answer = original(client, operation, params)
            finally:
                counter.inside_s += time.perf_counter() - started
            service_name = client.meta.service_model.service_name
            counter.calls[(service_name, operation)] += 1
            if service_name == "dynamodb":
                counter.items += len(answer.get("Items", [])) + (1 if "Item" in answer else 0)
            return answer

        BaseClient._make_api_call = counting
        return self

    def __exit__(self, *exc):
        BaseClient._make_api_call = self._original

    def dynamodb_calls(self):
        return sum(n for (service_name, _), n in self.calls.items() if service_name == "dynamodb")

    def breakdown(self):
        return ", ".join(f"{operation} {n}" for (_, operation), n in sorted(self.calls.items()))


def _round(action):
    with CallCounter() as counter:
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
    return counter, wall


def _event_rounds(size, rounds):
    """One account: the request with `size` events, then `rounds` posts and reads."""
    with common.fresh_account():
        started = time.perf_counter()
        contracts.put_contract(common.ADMIN, "bench", common.CONTRACT, NOW)
        policy = evaluation.policy_of(store.latest_record("bench"))
        request_id = factories.long_request(policy, "bench", size, NOW).request_id
        build_s = time.perf_counter() - started
        posts, reads = [], []
        for n in range(1, rounds + 1):
            now = NOW + timedelta(minutes=n)
            body = {"type": "progress", "note": f"round {n}"}
            posts.append(_round(partial(requests.post_event, common.ADMIN, request_id, body, now)))
            reads.append(_round(partial(requests.get_request, common.ADMIN, request_id, now)))
        stored = factories.item_bytes(RequestModel.get(request_id))
    return {"size": size, "build_s": build_s, "item_bytes": stored, "post": posts, "get": reads}


def _summary(rounds):
    counters = [counter for counter, _ in rounds]
    return {
        "calls": [c.dynamodb_calls() for c in counters], "items": [c.items for c in counters],
        "breakdown": counters[0].breakdown(),
        "wall_ms": statistics.median(wall for _, wall in rounds) * 1000,
        "inside_ms": statistics.median(c.inside_s for c in counters) * 1000,
    }


def _spread(values):
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"


def event_post_cost(args):
    """DynamoDB calls, items read and time for one event post and one GET of the request."""
    results = [_event_rounds(size, args.rounds) for size in args.sizes]
    rows, flat = [], True
    for operation in ("post", "get"):
        summaries = [_summary(r[operation]) for r in results]
        # Round n at one size against round n at another: each post adds an email to the request's
        # notifications (fewer than a page of them), equally at every size. A timeline shorter than a
        # page reads all of its events, a longer one always one page.
        full = [s for r, s in zip(results, summaries, strict=True) if r["size"] >= requests.EVENTS_PAGE]
        most = [max(column) for column in zip(*(s["items"] for s in summaries), strict=True)]
        flat &= all(s["calls"] == summaries[0]["calls"] and all(map(int.__le__, s["items"], most))
                    for s in summaries)
        flat &= all(s["items"] == most for s in full)
        for r, s in zip(results, summaries, strict=True):
            rows.append([f"{r['size']:,}", operation, _spread(s["calls"]), _spread(s["items"]),
                         f"{r['item_bytes'] / 1024:,.1f} KB",
                         f"{s['wall_ms']:,.0f} ms", f"{s['inside_ms']:,.0f} ms",
                         f"{s['wall_ms'] - s['inside_ms']:,.0f} ms", s["breakdown"]])
    build = ", ".join(f"{r['build_s']:.0f} s" for r in results)
    verdict = (f"DynamoDB calls equal, items read (round by round) equal from one page of events up: {flat}; "
               f"medians of {args.rounds} rounds; building the histories took {build}")
    return Table("Posting an event and reading a request, by timeline length",
                 ["events", "operation", "DynamoDB calls", "items read", "request item", "wall time", "in AWS calls",
                  "outside AWS calls", "AWS calls"], rows, verdict, flat)


def _scan_costs(days):
    """One account: a request answered `days` ago and never updated since, then two scans: the first
    after the scanner was down all that time (a catch-up), the next at the request's next check (the
    steady state). Returns [(counter, wall, report)] of both."""
    with common.fresh_account():
        contracts.put_contract(common.ADMIN, "bench", common.CONTRACT, SCANNED_AT - timedelta(days=days))
        policy = evaluation.policy_of(store.latest_record("bench"))
        received = SCANNED_AT - timedelta(days=days)
        # Urgent (24x7): first response met, then hourly progress cycles lapse and the resolution breaches
        # within the first day, so every age has the same alerts to catch up on.
        item = factories.insert([factories.request_item(policy, "bench", "urgent", received, received,
                                                         events=[("respond", received + timedelta(minutes=20))])])[0]
        scans, moment = [], SCANNED_AT
        for _ in range(2):
            reports = []
            counter, wall = _round(partial(lambda at, found: found.append(scanner.scan(at, Budget(600))),
                                           moment, reports))
            scans.append((counter, wall, reports[0]))
            moment = datetime.fromtimestamp(RequestModel.get(item.request_id).next_check_at, UTC)
    return scans


def scan_cost_by_neglect(args):
    """DynamoDB calls (and writes) of the scans that check a request neglected 1, 30 and 180 days."""
    rows, by_kind = [], {}
    for days in args.neglect:
        for kind, (counter, wall, report) in zip(("catch-up", "next check"), _scan_costs(days), strict=True):
            writes = sum(n for (name, op), n in counter.calls.items()
                         if name == "dynamodb" and op in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"))
            by_kind.setdefault(kind, set()).add((counter.dynamodb_calls(), writes, report.created))
            rows.append([f"{days}", kind, counter.dynamodb_calls(), writes, counter.items, report.created,
                         f"{wall * 1000:,.0f} ms", counter.breakdown()])
    flat = all(len(found) == 1 for found in by_kind.values())
    verdict = f"DynamoDB calls, writes and notifications created equal whatever the neglect: {flat}"
    return Table("Scanning a request neglected for days (urgent, answered, never updated since)",
                 ["days neglected", "scan", "DynamoDB calls", "writes", "items read", "notifications created",
                  "wall time", "AWS calls"], rows, verdict, flat)


ITEM_LIMIT = 400 * 1024
# Every 10 minutes, on the urgent priority's 24x7 clock and on the high priority's business hours.
TEN_MINUTE_CYCLES = {"urgent": "24x7", "high": "business hours"}


def _resolved_after(days, priority):
    """One account: a request of `priority` answered `days` before it is resolved, never updated in
    between, on a 10-minute progress cycle. Returns its state, item, the resolve's CPU time (moto's
    included) and the name of the error that refused it, if any."""
    document = copy.deepcopy(common.CONTRACT)
    for name in TEN_MINUTE_CYCLES:
        document["priorities"][name]["progress_every"] = "10m"
    received, resolved = SCANNED_AT - timedelta(days=days, minutes=20), SCANNED_AT
    with common.fresh_account():
        contracts.put_contract(common.ADMIN, "bench", document, received - timedelta(days=1))
        policy = evaluation.policy_of(store.latest_record("bench"))
        item = factories.insert([factories.request_item(policy, "bench", priority, received, received,
                                                         events=[("respond", received + timedelta(minutes=20))])])[0]
        gc.collect()  # the earlier accounts' garbage is not this resolve's cost
        started = time.process_time()
        try:
            requests.post_event(common.ADMIN, item.request_id, {"type": "resolve"}, resolved)
            refused = None
        except Exception as exc:  # noqa: BLE001 - what DynamoDB answers an item past 400 KB, reported
            refused = type(exc).__name__
        cpu = time.process_time() - started
        stored = RequestModel.get(item.request_id)
        if refused:  # the item the resolve would have written, measured all the same
            stored.timeline = (*stored.timeline, Event(len(stored.timeline) + 1, "resolve", resolved))
            state = evaluation.state_of(records.stored_request(stored), policy, resolved)
            for name, value in records.cached_attributes(stored, cached_fields(state)).items():
                setattr(stored, name, value)
        state = evaluation.state_of(records.stored_request(stored), policy, resolved)
    return state, stored, cpu, refused


def resolved_size_by_neglect(args):
    """The frozen outcome and the request item of a request resolved after 1, 30, 180 and 365 days of
    lapsed 10-minute cycles."""
    rows, frozen_24x7, fits = [], [], True
    for priority, clock in TEN_MINUTE_CYCLES.items():
        for days in args.resolved_after:
            state, item, cpu, refused = _resolved_after(days, priority)
            frozen, size = len(json.dumps(item.frozen_state)), factories.item_bytes(item)
            fits &= size < ITEM_LIMIT / 10 and refused is None
            if clock == "24x7":
                frozen_24x7.append(frozen)
            rows.append([clock, f"{days}", f"{state.metrics['progress_update'].misses:,}",
                         f"{len(state.milestones):,}", f"{frozen / 1024:,.1f} KB", f"{size / 1024:,.1f} KB",
                         f"{size / ITEM_LIMIT:.1%}", f"refused ({refused})" if refused else "resolved",
                         f"{cpu * 1000:,.0f} ms"])
    flat = max(frozen_24x7) - min(frozen_24x7) < 1024
    verdict = (f"24x7 frozen outcome flat (within 1 KB): {flat}; every resolve written and every item below "
               f"40 KB, a tenth of DynamoDB's 400 KB: {fits}")
    return Table("Resolving a request neglected for days (10-minute progress cycle, answered, never updated since)",
                 ["clock", "days neglected", "missed cycles", "milestones", "frozen outcome", "request item",
                  "of 400 KB", "resolve", "resolve CPU"], rows, verdict, flat and fits)


LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def _next_scan(after, next_check_at):
    """The first whole minute of the scanner's schedule after `after` and not before the request's next
    check: the minutes in between would find nothing due."""
    due = max(after + timedelta(minutes=1), datetime.fromtimestamp(next_check_at, UTC))
    return due if due == due.replace(second=0, microsecond=0) else \
        due.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _copied_day(entries, days):
    """Outbox `entries` of a request's first day again, `days` later: the entries the same day's cycles
    create then (the cycle number in the key moved on as the scanner numbers it)."""
    cycles = days * 144  # 10-minute cycles a day
    for entry in entries:
        parts = entry.key.split("|")  # progress_reminder|<cycle>, or breach|… and warning|… of progress_update
        at = 1 if parts[0] == "progress_reminder" else 2 if parts[1:2] == ["progress_update"] else None
        if at is None:
            continue  # the acknowledgement, the notices of events, the other metrics' one breach
        parts[at] = str(int(parts[at]) + cycles)
        copy_ = NotificationModel.from_raw_data(entry.serialize())
        copy_.key = "|".join(parts)
        copy_.created_at = entry.created_at + timedelta(days=days)
        yield copy_


def notification_list_by_age(args):
    """GET /requests/{id} of an urgent request (24x7, 10-minute progress cycle) answered and then
    neglected, the scanner running on schedule, after 1 and 30 days: the document's size and what
    reading it costs, against what the whole notifications list would weigh."""
    document = copy.deepcopy(common.CONTRACT)
    document["priorities"]["urgent"]["progress_every"] = "10m"
    rows, costs, sizes, fits = [], set(), [], True
    with common.fresh_account():
        received = SCANNED_AT - timedelta(days=max(args.scanned_for), minutes=20)
        contracts.put_contract(common.ADMIN, "bench", document, received - timedelta(days=1))
        policy = evaluation.policy_of(store.latest_record("bench"))
        item = factories.insert([factories.request_item(policy, "bench", "urgent", received, received,
                                                         events=[("respond", received + timedelta(minutes=20))])])[0]
        started, moment, scans = time.perf_counter(), received, 0
        while moment < received + timedelta(days=1):
            scanner.scan(moment, Budget(600))
            scans += 1
            moment = _next_scan(moment, RequestModel.get(item.request_id).next_check_at)
        first_day = outbox.of_request(item.request_id)
        scanned_s = time.perf_counter() - started
        written = 0
        for days in sorted(args.scanned_for):
            with NotificationModel.batch_write() as batch:
                for day in range(written + 1, days):
                    for entry in _copied_day(first_day, day):
                        batch.save(entry)
            written = max(written, days - 1)
            now = received + timedelta(days=days)
            counter, wall = _round(partial(requests.get_request, common.ADMIN, item.request_id, now))
            answer = json.dumps(requests.get_request(common.ADMIN, item.request_id, now), ensure_ascii=False)
            every = outbox.of_request(item.request_id)
            whole_list = len(json.dumps([notification_document(e, policy.calendar.tz) for e in every],
                                        ensure_ascii=False))
            stored = sum(factories.item_bytes(entry) for entry in every)
            costs.add((counter.dynamodb_calls(), counter.items))
            sizes.append(len(answer.encode()))
            fits &= len(answer.encode()) < LAMBDA_RESPONSE_LIMIT / 100
            rows.append([f"{days}", f"{len(every):,}", f"{stored / 1024 / 1024:,.1f} MB",
                         f"{whole_list / 1024:,.0f} KB", counter.dynamodb_calls(), counter.items,
                         f"{len(answer.encode()) / 1024:,.1f} KB", f"{wall * 1000:,.0f} ms",
                         f"{(wall - counter.inside_s) * 1000:,.0f} ms", counter.breakdown()])
    flat = len(costs) == 1 and max(sizes) - min(sizes) < 1024  # cycle numbers in the keys grow a digit
    verdict = (f"DynamoDB calls and items read equal, document within 1 KB at every age: {flat}; the document below "
               f"1% of Lambda's 6 MB answer: {fits}; the first day took {scans} scans on schedule "
               f"({scanned_s:.0f} s), the later days are its notifications again a day apart each")
    return Table("Reading a request the scanner has alerted on for days (urgent, 10-minute progress cycle)",
                 ["days", "notifications", "stored", "whole list as JSON", "DynamoDB calls", "items read",
                  "document", "wall time", "outside AWS calls", "AWS calls"], rows, verdict, flat and fits)


# Each measurement: the parsed arguments in, a Table out.
MEASUREMENTS = [event_post_cost, scan_cost_by_neglect, resolved_size_by_neglect, notification_list_by_age]


def print_table(table):
    print(f"### {table.title}\n")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "|".join(" ---: " for _ in table.columns) + "|")
    for row in table.rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print(f"\n{table.verdict}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--neglect", type=int, nargs="+", default=[1, 30, 180], help="days a request is neglected")
    parser.add_argument("--resolved-after", type=int, nargs="+", default=[1, 30, 180, 365],
                        help="days a request is neglected before it is resolved")
    parser.add_argument("--scanned-for", type=int, nargs="+", default=[1, 30],
                        help="days the scanner has alerted on a request before it is read")
    parser.add_argument("--only", choices=[m.__name__ for m in MEASUREMENTS], nargs="+",
                        help="run only these measurements")
    args = parser.parse_args()
    tables = [measure(args) for measure in MEASUREMENTS if not args.only or measure.__name__ in args.only]
    for table in tables:
        print_table(table)
    sys.exit(0 if all(table.passed for table in tables) else 1)


if __name__ == "__main__":
    main()
