"""`make demo`: the whole product in about a minute, against a running `make run`.

Posts to a contract of its own, "national-day" (seeded by `make run` with the demo contract's terms
and tokens of its own), so that its fortnight and the requests you post to "demo" by hand never count
in each other's reports. It posts a realistic fortnight of backdated requests with the agent token, around
the 2026 National Day holiday (1–7 October; make-up working days 20 September and 10 October): some
answered on time, some late, one received the afternoon before the holiday, one on the 24x7 clock in
the middle of it, one from WeChat registered after it, one never answered. It tallies every day through
the admin back-fill endpoint, prints the September and October reports, and a what-if: October
replayed under the terms a customer might ask for at renewal (high priority answered within 1 h,
medium within 2 h) with the monthly cap the provider would ask in return (1,000 CNY), printed as a
before/after table (nothing of the what-if is stored). Last it runs the deadline scanner once (in this
process, against the same moto server) and lists the emails sent (to the provider: the customers'
notices about those weeks are recorded as skipped, never sent). The scanner leaves an import alone
until a minute after its last write (so that it never alerts on a timeline whose next event is on its
way), and the demo waits out what is left of that minute rather than scan ahead of the clock: the
emails carry the time they were really sent.

It also adds the agreements' answer-time clauses to the contract (a call to the hotline answered
within 60 seconds in business hours, a chat within 30 seconds around the clock, 90 % of each), posts
the phone calls and chats of Thursday 8 October, the busy first working day after the holiday, and
prints each channel's service level.

Re-running is safe: every request carries an Idempotency-Key, events already posted are skipped, and
interactions posted again replace themselves.
"""
import email
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from wcwidth import wcswidth

from chalicelib.core.alerts import IMPORT_SETTLES
from chalicelib.core.emails import ljust_columns
from chalicelib.core.facts import METRICS

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("SLA_RUN_STATE") or ROOT / ".run" / "local.json")  # written by `make run`
SH = ZoneInfo("Asia/Shanghai")


def at(text):
    return datetime.strptime(text, "%m-%d %H:%M").replace(year=2026, tzinfo=SH)


# (key, priority, channel, subject, received, [events (type, at, extra)])
WEEK = [
    ("vpn", "high", "portal", "VPN 无法连接", "09-28 09:20",
     [("respond", "09-28 10:00"), ("progress", "09-28 13:30", {"note": "已定位到证书过期"}),
      ("resolve", "09-28 15:00", {"note": "已更新证书"})]),
    ("report", "medium", "email", "报表导出中文乱码", "09-28 14:00",
     [("respond", "09-29 11:30", {"note": "正在排查编码设置"}), ("resolve", "09-30 10:00")]),
    ("printer", "low", "hotline", "打印机驱动安装失败", "09-28 11:00", []),
    ("account", "low", "portal", "申请新增三个账号", "09-29 22:30",
     [("respond", "09-30 09:40"), ("await_customer", "09-30 09:45", {"note": "请提供部门负责人审批单"}),
      ("customer_reply", "10-08 09:10"), ("resolve", "10-08 11:00", {"note": "账号已开通"})]),
    ("payment", "high", "portal", "支付接口超时", "09-30 16:30",
     [("respond", "10-08 09:30", {"note": "节后第一时间处理"}), ("resolve", "10-08 16:00")]),
    ("outage", "urgent", "hotline", "核心系统宕机", "10-01 03:00",
     [("respond", "10-01 03:20"), ("progress", "10-01 04:10"), ("progress", "10-01 05:30"),
      ("resolve", "10-01 12:00", {"note": "数据库主备切换完成"})]),
    ("wechat", "medium", "wechat", "微信反馈：登录验证码收不到", "10-02 10:00",
     [("register", "10-08 09:00", {"channel": "portal"}), ("respond", "10-08 13:40"),
      ("resolve", "10-09 10:00")]),
]
RATINGS = {"vpn": (5, "09-28 16:00"), "report": (3, "09-30 11:00"), "outage": (4, "10-01 13:00")}
CHANNELS = {"phone": {"answer_within": "60s", "target": 0.9, "hours": "business"},
            "chat": {"answer_within": "30s", "target": 0.9, "hours": "24x7"}}
INTERACTIONS_DAY = date(2026, 10, 8)
META_KEYS = ("contract_id", "version", "updated_at", "calendar_years")
DAYS = [date(2026, 9, 28) + timedelta(days=n) for n in range(12)]  # 28 Sep – 9 Oct
WHAT_IF_MONTH = "2026-10"
WHAT_IF = {("priorities", "high", "first_response"): "1h", ("priorities", "medium", "first_response"): "2h",
           ("penalties", "monthly_cap"): 1000}
SUBJECT_COLUMNS = max(wcswidth(subject) for _, _, _, subject, _, _ in WEEK)  # a Chinese character takes two


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, token, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def post_requests(api, state):
    ids = {}
    for key, priority, channel, subject, received, events in WEEK:
        body = {"contract_id": state["contract_id"], "priority": priority, "channel": channel, "subject": subject,
                "requester": {"name": "王经理", "email": f"{key}@customer.example"},
                "received_at": at(received).isoformat()}
        status, created = api.call("POST", "/requests", state["agent"], body, {"Idempotency-Key": f"demo-{key}"})
        if status != 201:
            sys.exit(f"demo: POST /requests answered {status}: {created}")
        ids[key] = created["request_id"]
        _, current = api.call("GET", f"/requests/{ids[key]}", state["agent"])
        for kind, when, *extra in events[len(current["events"]) - 1:]:
            body = {"type": kind, "at": at(when).isoformat(), **(extra[0] if extra else {})}
            status, answer = api.call("POST", f"/requests/{ids[key]}/events", state["agent"], body)
            if status != 200:
                sys.exit(f"demo: {kind} on {key} answered {status}: {answer}")
        if key in RATINGS and not any(e["type"] == "rate" for e in current["events"]):
            score, when = RATINGS[key]  # recorded by an admin on the customer's behalf, with its time
            api.call("POST", f"/requests/{ids[key]}/events", state["admin"],
                     {"type": "rate", "score": score, "at": at(when).isoformat()})
        print(f"  {priority:<6} {ljust_columns(subject, SUBJECT_COLUMNS)} {ids[key]}")
    return ids


def print_skipped(api, state, ids):
    """The customer notices the import recorded but never sent: they were about moments long past."""
    skipped = [notification for request_id in ids.values()
               for notification in api.call("GET", f"/requests/{request_id}", state["agent"])[1]["notifications"]
               if notification["status"] == "skipped"]
    print(f"  {len(skipped)} customer notices recorded as skipped, reason backdated: an import never writes to "
          "customers about the past")


def ensure_channels(api, state):
    """The contract's answer-time clauses: added as a new contract version when it lacks them."""
    path = f"/contracts/{state['contract_id']}"
    _, contract = api.call("GET", path, state["admin"])
    if contract.get("interactions") == CHANNELS:
        return
    document = {key: value for key, value in contract.items() if key not in META_KEYS} | {"interactions": CHANNELS}
    status, answer = api.call("PUT", path, state["admin"], document)
    if status != 200:
        sys.exit(f"demo: adding the phone and chat clauses answered {status}: {answer}")


def day_of_interactions(rng):
    """Thursday 8 October: calls from 08:30 to 18:00 (the hotline's hours are 09:00-12:00 and 13:00-17:00,
    so some fall outside), chats around the clock; most answered in seconds, a few late or abandoned."""
    start = datetime.combine(INTERACTIONS_DAY, datetime.min.time(), tzinfo=SH)
    items = []
    for channel, count, first_h, last_h, quick in (("phone", 260, 8.5, 18, (3, 55)), ("chat", 180, 0, 24, (2, 28))):
        for n in range(count):
            offered = start + timedelta(seconds=round(rng.uniform(first_h, last_h) * 3600))
            item = {"id": f"demo-{channel}-{n:03d}", "channel": channel, "offered_at": offered.isoformat()}
            luck = rng.random()
            if luck < 0.04:
                item["abandoned_at"] = (offered + timedelta(seconds=rng.randint(3, 20))).isoformat()  # gave up soon
            elif luck < 0.08:
                item["abandoned_at"] = (offered + timedelta(seconds=rng.randint(70, 240))).isoformat()
            else:
                wait = rng.randint(*quick) if luck < 0.9 else rng.randint(quick[1] + 10, quick[1] * 4)
                item["answered_at"] = (offered + timedelta(seconds=wait)).isoformat()
            items.append(item)
    return items


def post_interactions(api, state):
    items = day_of_interactions(random.Random(20261008))
    status, answer = api.call("POST", f"/contracts/{state['contract_id']}/interactions", state["agent"],
                              {"items": items})
    if status != 200:
        sys.exit(f"demo: POST /contracts/…/interactions answered {status}: {answer}")
    print(f"  {len(items)} calls and chats of {INTERACTIONS_DAY}: {answer['accepted']} accepted, "
          f"{answer['replaced']} replaced an earlier post")


def print_service_levels(report):
    print("\nService levels, October 2026 (only interactions offered in each channel's hours count):")
    print("  channel  promise   offered  answered  within  abandoned  avg s  p90 s  level    target")
    for channel, counts in report["interactions"].items():
        kpi = report["kpi"]["service_level"][channel]
        level = "—" if kpi["actual"] is None else f"{kpi['actual']:.1%}"
        verdict = "met" if kpi["met"] else "missed"
        print(f"  {channel:<8} {CHANNELS[channel]['answer_within']:>7}  {counts['offered']:>7}  "
              f"{counts['answered']:>8}  {counts['answered_within']:>6}  {counts['abandoned']:>9}  "
              f"{counts['average_answer_seconds']:>5}  {counts['p90_answer_seconds']:>5}  {level:>6}  "
              f"{kpi['target']:.0%} {verdict}")


def append_line(path, line):
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")


def use_the_running_aws(state):
    """Point this process's AWS clients at `make run`'s moto server and tables."""
    os.environ.update(AWS_ENDPOINT_URL=state["moto"], SLA_TABLE_PREFIX=state["table_prefix"],
                      AWS_DEFAULT_REGION=state["region"], AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", SLA_EML_DIR=state["eml_dir"], SLA_LOG_LEVEL="WARNING")


def run_scanner(state, settled_at):
    """The scanner once, in this process against the running moto server, once the import has settled
    (`settled_at`: a minute after the demo's last write); its metrics go where `make run` writes the
    API's, not between the demo's lines."""
    from chalicelib import logs, scanner
    from chalicelib.aws import metrics

    logs.configure()
    metrics.use_writer(lambda document: append_line(state["metrics_file"], json.dumps(document)))
    wait = (settled_at - datetime.now(UTC)).total_seconds()
    if wait > 0:
        print(f"Waiting {wait:.0f} s: the scanner leaves an import alone until a minute after its last write.",
              flush=True)
        time.sleep(wait)
    return scanner.scan(datetime.now(UTC))


def what_if(api, state):
    """October under the candidate terms, from the agent's seat: the short table, then the requests
    whose outcome changes."""
    candidate = json.loads((ROOT / "seed" / "demo-contract.json").read_text("utf-8"))
    for (*parents, key), value in WHAT_IF.items():
        target = candidate
        for name in parents:
            target = target[name]
        target[key] = value
    status, body = api.call("POST", f"/contracts/{state['contract_id']}/simulations", state["agent"],
                            {"contract": candidate, "month": WHAT_IF_MONTH})
    if status != 200:
        sys.exit(f"demo: the what-if answered {status}: {body}")
    print(f"\nWhat if ({WHAT_IF_MONTH}, {body['requests']} requests received): high answered within 1 h, "
          "medium within 2 h, monthly cap 1,000:")
    print(f"  {'':<26}{'current':>12}{'candidate':>16}")
    for metric in METRICS:
        print(f"  {metric + ' breaches':<26}{body['current']['breaches'][metric]:>12}"
              f"{body['candidate']['breaches'][metric]:>16}")
    print(f"  {'penalties ' + body['current']['currency']:<26}{_amount(body['current']):>12}"
          f"{_amount(body['candidate']):>16}")
    for change in body["changed"]:
        before, after = change["current"], change["candidate"]
        print(f"  {change['request_id']}: {', '.join(before['breached']) or 'no breach'} {before['penalty']} → "
              f"{', '.join(after['breached']) or 'no breach'} {after['penalty']}")
    print(f"  {body['changed_total']} request(s) change; nothing was stored or sent.")


def _amount(summary):
    total = f"{summary['penalties']['total']:,}"
    return f"{total} (capped)" if summary["penalties"]["capped"] else total


def kind_of(eml):
    """What a kept email is, from its X-SLA-Notification header (`<owner>|<outbox key>`): the first word
    of the key, e.g. "breach" for breach|first_response|0. (Its file name cannot tell: a contract id
    may hold the '-' that separates the name's parts.)"""
    with eml.open("rb") as file:
        notification = email.message_from_binary_file(file)["X-SLA-Notification"]
    return notification.split("|")[1].split("_")[0]


def load_state(path):
    """`make run`'s run state, with the contract and agent token of `make demo`'s own contract in place
    of the "demo" contract's."""
    if not path.exists():
        sys.exit("demo: start the service first with `make run` (in another terminal)")
    state = json.loads(path.read_text())
    if "make_demo" not in state:
        sys.exit("demo: this `make run` started before the demo had a contract of its own: restart it")
    return state | state["make_demo"]


def main():
    state = load_state(STATE)
    use_the_running_aws(state)
    api = Api(state["api"])
    try:
        api.call("GET", "/health", state["admin"])
    except urllib.error.URLError:
        sys.exit(f"demo: nothing answers at {state['api']}: is `make run` still running?")
    print(f"Posting a fortnight around National Day 2026 to contract {state['contract_id']!r}:")
    ids = post_requests(api, state)
    settled_at = datetime.now(UTC) + IMPORT_SETTLES  # the requests' last write is behind us
    print_skipped(api, state, ids)
    print("Phone and chat (the contract's answer-time clauses):")
    ensure_channels(api, state)
    post_interactions(api, state)
    print("Tallying each day (POST /contracts/…/tallies):")
    for day in DAYS:
        status, tally = api.call("POST", f"/contracts/{state['contract_id']}/tallies", state["admin"],
                                 {"date": day.isoformat()})
        breaches = sum(sum(v.values()) for v in tally["breaches"].values()) if status == 200 else "?"
        print(f"  {day}  received {tally.get('received', '?'):>2}  breaches {breaches:>2}  "
              f"penalties {tally.get('penalties', '?')} {tally.get('currency', '')}")
    for month in ("2026-09", "2026-10"):
        _, body = api.call("GET", f"/contracts/{state['contract_id']}/reports?month={month}", state["admin"])
        print(f"\nReport {month}:")
        print(json.dumps({k: body[k] for k in ("requests", "breaches", "on_time_rate", "penalties", "kpi")},
                         ensure_ascii=False, indent=2))
    print_service_levels(body)  # October's
    what_if(api, state)
    print()
    report = run_scanner(state, settled_at)
    print(f"Scanner: {report.due} requests due, {report.sent} emails sent, {report.pending} pending.")
    emails = sorted(Path(state["eml_dir"]).glob("*.eml"))
    kinds = Counter(kind_of(path) for path in emails)
    print(f"{len(emails)} emails in {state['eml_dir']}/: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
