"""Notification emails (see docs/clock.md): templates in zh-CN and en, rendered to subject, text and HTML.

Pure rendering: no AWS and no clock. The caller passes every value already formatted as a string;
`render` only localizes the raw priority and metric, derives the optional blocks (greeting, note,
first-response promise) and escapes for HTML, so the template files hold no logic.

Templates live in `chalicelib/core/templates/<language>/<kind>.{subject.txt,txt,html}`, and every label
and phrase of a language in `templates/<language>/phrases.toml`: this module holds no wording, so a new
language is one folder. Chalice packages everything under chalicelib/; each file is read once per process.
"""
import html
import math
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template
from types import MappingProxyType

from wcwidth import wcswidth

from chalicelib.core import events
from chalicelib.core.facts import METRICS, PROGRESS_UPDATE
from chalicelib.core.fields import one_line, printable

# The kinds of a request's emails: those its events send (declared with each event type in
# core/events.py), and the SLA alerts the scanner sends (warnings and progress reminders to
# notify.provider, breaches to notify.provider and notify.admins).
EVENT_KINDS = events.EMAIL_KINDS
ALERT_KINDS = ("warning", "breach", "progress_reminder")
KINDS = EVENT_KINDS + ALERT_KINDS
# Emails written to the customer: they carry the contract's notify.reply_to, where the customer's answers
# belong. The provider's and admins' alerts and reports do not: a reply to one is for the sender.
CUSTOMER_KINDS = events.REQUESTER_EMAIL_KINDS + ("customer_report",)
LANGUAGES = ("zh-CN", "en")  # one folder each under templates/ (tests/test_emails.py checks they agree)
MAX_RECIPIENTS = 50  # addresses one email may go to: SES refuses a message with more (To, Cc and Bcc together)

_COMMON = ("contract_name", "request_id", "subject", "priority", "requester_name")
_EVENT_NOTICE = _COMMON + ("received_at", "deadline", "remaining", "note")
REQUIRED_KEYS = MappingProxyType({kind: _EVENT_NOTICE for kind in EVENT_KINDS} | {
    "acknowledgement": _COMMON + ("received_at", "first_response_due", "deadline", "remaining", "note"),
    "warning": _COMMON + ("metric", "deadline", "remaining", "threshold"),
    "breach": _COMMON + ("metric", "deadline", "remaining"),
    "progress_reminder": _COMMON + ("deadline", "remaining", "cycle"),
})
"""Context keys each kind needs; render() raises KeyError naming the first one missing.
Optional: `cycle` for warning/breach (shown when the metric is progress_update), `missed` for breach
(progress cycles missed in all: a catch-up line when more than one), `metric` for
progress_reminder (always progress_update), `provisional` (True: the deadline shown was computed over
an estimated holiday schedule, which one line says). Extra keys are ignored by the templates."""

_NOTE_HTML = (
    '<p style="margin:16px 0 4px 0;font-weight:bold;">{heading}</p>\n'
    '<div style="margin:0 0 16px 0;padding:8px 12px;border-left:3px solid #1a73e8;background:#f4f8fe;">'
    "{note}</div>\n"
)


_PROVISIONAL_HTML = '<tr><td colspan="2" style="{td}color:#b26a00;">{text}</td></tr>\n'


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(kind, language, context):
    """Render one notification. ValueError for an unknown kind or language, KeyError for a missing key."""
    _check_kind(kind)
    _check_language(language)
    for key in REQUIRED_KEYS[kind]:
        if key not in context:
            raise KeyError(key)
    provisional = context.get("provisional") is True
    values = {key: _string(value) for key, value in context.items() if key != "provisional"}
    words = _phrases(language)
    phrases = words["phrase"]
    labels = {
        "priority_label": words["priority"].get(values["priority"], values["priority"]),
    }
    if "metric" in values:
        metric_label = words["metric"].get(values["metric"], values["metric"])
        labels["metric_label"] = metric_label
        cycle = values.get("cycle", "")
        if values["metric"] == PROGRESS_UPDATE and cycle:
            labels["metric_detail"] = phrases["cycle"].format(metric=metric_label, cycle=cycle)
        else:
            labels["metric_detail"] = metric_label
    labels["requester_display"] = values["requester_name"] or phrases["nobody"]

    text = values | labels | _derived(kind, words, values, provisional, escape=False)
    markup = _escaped(values | labels) | _derived(kind, words, values, provisional, escape=True)
    subject_values = {key: one_line(value) for key, value in (values | labels).items()}
    return _assemble(kind, language, text, markup, subject_values)


def _assemble(kind, language, values, markup, subject_values=None):
    """An email of `kind` from its three templates: the subject (on one line) and the text filled with
    `values` (the subject with `subject_values` when given), the HTML with `markup` (escaped already)
    inside the shared layout."""
    return Rendered(
        subject=one_line(_template(language, kind, "subject.txt").substitute(subject_values or values)),
        text=_template(language, kind, "txt").substitute(values),
        html=_html(language, kind, markup),
    )


def _escaped(values):
    return {key: html.escape(value) for key, value in values.items()}


def distinct_addresses(addresses):
    """`addresses` in their order, each mailbox once: the same address spelled in another case is one
    mailbox (every provider treats it so), and one email to it twice would arrive twice."""
    seen, found = set(), []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    return found


def format_minutes(minutes, language):
    """Business minutes for humans: 95 -> "1 小时 35 分钟" / "1 h 35 min"; negative -> overdue; None -> "—".

    Fractions are floored: 0.5 minutes left shows "0 min", half a minute past the deadline "1 min overdue".
    """
    _check_language(language)
    if minutes is None:
        return "—"
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes):
        raise ValueError(f"minutes must be a finite number or None, not {minutes!r}")
    words = _phrases(language)["duration"]
    whole = math.floor(minutes)
    hours, rest = divmod(abs(whole), 60)
    parts = ([words["hours"].format(hours=hours)] if hours else []) + (
        [words["minutes"].format(minutes=rest)] if rest or not hours else [])
    span = " ".join(parts)
    return words["overdue"].format(span=span) if whole < 0 else span


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; known: {', '.join(KINDS)}")


def _check_language(language):
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")


def _derived(kind, words, values, provisional, escape):
    """Greeting, note block, first-response promise and estimated-schedule line, as text or (escape=True)
    as HTML."""
    quote = html.escape if escape else str
    phrases = words["phrase"]
    name = one_line(values["requester_name"])
    found = {
        "greeting": phrases["greeting_named"].format(name=quote(name)) if name else phrases["greeting"],
    }
    if not provisional:
        found["provisional_row" if escape else "provisional_line"] = ""
    elif escape:
        found["provisional_row"] = _PROVISIONAL_HTML.format(td=_TABLE_STYLES["td"],
                                                            text=html.escape(phrases["provisional"]))
    else:
        found["provisional_line"] = phrases["provisional"] + "\n"
    if kind in EVENT_KINDS:
        note = values["note"].strip("\r\n")
        heading = words["note_heading"][kind]
        if not note.strip():
            found["note_block"] = ""
        elif escape:
            body = "<br>\n".join(html.escape(line) for line in note.splitlines())
            found["note_block"] = _NOTE_HTML.format(heading=heading, note=body)
        else:
            found["note_block"] = f"{heading}{phrases['colon']}\n{note}\n\n"
    if kind == "breach":
        # A catch-up alert says how many progress cycles lapsed; a single missed deadline needs no line.
        missed = values.get("missed", "")
        line = phrases["missed"].format(missed=missed) if missed.isdigit() and int(missed) > 1 else ""
        found["missed_line"] = (f'<p style="margin:0 0 12px 0;font-weight:bold;">{quote(line)}</p>\n' if escape
                                else f"{line}\n\n") if line else ""
    if kind == "acknowledgement":
        due = values["first_response_due"].strip()
        found["due_sentence"] = phrases["due"].format(due=quote(due)) if due else phrases["no_due"]
    return found


def _string(value):
    """A value as email text. Text stored before the API checked it may hold control characters or
    lone surrogates, which are replaced: a lone surrogate could not even be stored in the outbox."""
    return "" if value is None else printable(str(value), multiline=True)


# Inline styles (mail clients ignore style sheets) shared by the facts tables of every HTML body.
_TABLE_STYLES = {
    "th": "text-align:left;vertical-align:top;padding:6px 16px 6px 0;color:#666666;font-weight:normal;"
          "white-space:nowrap;border-bottom:1px solid #eeeeee;",
    "td": "padding:6px 0;border-bottom:1px solid #eeeeee;",
}


# Facts-table rows that several kinds show alike, kept once per language (templates/<lang>/<name>.html).
_PARTIALS = {"customer_facts": EVENT_KINDS, "provider_facts": ALERT_KINDS}


def _html(language, kind, markup):
    """A kind's HTML body (already escaped values in `markup`) inside the shared page layout."""
    values = markup | _TABLE_STYLES
    for name, kinds in _PARTIALS.items():
        if kind in kinds:
            values[name] = _template(language, name, "html").substitute(values)
    content = _template(language, kind, "html").substitute(values)
    return _layout().substitute(lang=language, content=content)


@cache
def _layout():
    return Template((resources.files(__package__) / "templates" / "layout.html").read_text(encoding="utf-8"))


@cache
def _phrases(language):
    """templates/<language>/phrases.toml: section -> key -> wording (read-only)."""
    source = resources.files(__package__) / "templates" / language / "phrases.toml"
    sections = tomllib.loads(source.read_text(encoding="utf-8"))
    return MappingProxyType({name: MappingProxyType(words) for name, words in sections.items()})


@cache
def _template(language, kind, part):
    source = resources.files(__package__) / "templates" / language / f"{kind}.{part}"
    return Template(source.read_text(encoding="utf-8"))


# The tally's and the report's rows: a label heading the row, then its values.
_ROW_LABEL_HTML = ('<tr><th scope="row" style="text-align:left;padding:6px 16px 6px 0;color:#666666;font-weight:normal;'
                   'border-bottom:1px solid #eeeeee;">{label}</th>')
_TALLY_ROW_HTML = (_ROW_LABEL_HTML +
                   '<td style="text-align:right;padding:6px 16px;border-bottom:1px solid #eeeeee;">{day}</td>'
                   '<td style="text-align:right;padding:6px 0;border-bottom:1px solid #eeeeee;">{month}</td></tr>')


def render_daily_tally(language, context):
    """The nightly tally email to the contract's admins: the day's numbers and the month to date.

    `context`: contract_name, contract_id, date, currency, and "day" / "month" dicts with received,
    responded, resolved, penalties and breaches (day: metric → priority → count; month: metric → count);
    optional "interactions": channel → {"answer_within", "target", "day", "month"}, the last two with
    offered, service_level (a fraction or None) and p90_answer_seconds (or None).
    """
    _check_language(language)
    labels = _phrases(language)["daily_tally"]
    day, month = context["day"], context["month"]
    day_breaches = {metric: sum(by_priority.values()) for metric, by_priority in day["breaches"].items()}
    rows = [(labels[key], day[key], month[key]) for key in ("received", "responded", "resolved")]
    rows += [(labels[metric], day_breaches.get(metric, 0), month["breaches"].get(metric, 0))
             for metric in METRICS]
    rows.append((labels["penalties"].format(currency=context["currency"]), _number(day["penalties"]),
                 _number(month["penalties"])))
    for channel, line in context.get("interactions", {}).items():
        names = {"channel": channel, "within": line["answer_within"], "target": _percent(line["target"])}
        rows += [(labels["offered"].format(**names), line["day"]["offered"], line["month"]["offered"]),
                 (labels["service_level"].format(**names), _percent(line["day"]["service_level"]),
                  _percent(line["month"]["service_level"])),
                 (labels["p90"].format(**names), _or_dash(line["day"]["p90_answer_seconds"]),
                  _or_dash(line["month"]["p90_answer_seconds"]))]
    values = {
        "contract_name": one_line(_string(context["contract_name"])),
        "contract_id": _string(context["contract_id"]),
        "date": _string(context["date"]),
        "currency": _string(context["currency"]),
        "breaches": str(sum(day_breaches.values())),
        "penalties": _number(day["penalties"]),
    }
    width = max(_columns(label) for label, _, _ in rows)
    text_rows = "\n".join(f"{ljust_columns(label, width)}  {_right(d, 8)}  {_right(m, 8)}" for label, d, m in rows)
    header = f"{ljust_columns(labels['item'], width)}  {_right(labels['day'], 8)}  {_right(labels['month'], 8)}"
    html_rows = "\n".join(_TALLY_ROW_HTML.format(label=html.escape(label), day=html.escape(str(d)),
                                                 month=html.escape(str(m))) for label, d, m in rows)
    return _assemble("daily_tally", language, values | {"rows": f"{header}\n{text_rows}"},
                     _escaped(values) | {"rows": html_rows, "day_heading": html.escape(labels["day"]),
                                         "month_heading": html.escape(labels["month"])}, values)


def _columns(text):
    """The columns `text` takes in a monospace font: two for each CJK character, so Chinese labels line up
    (len() counts them as one). A character without a width (a control character) counts as one."""
    width = wcswidth(text)
    return len(text) if width < 0 else width


def ljust_columns(value, width):
    """`value` padded with spaces to `width` columns of a monospace font (str.ljust pads Chinese text
    by characters, which take two columns each: the columns after it would not line up)."""
    text = str(value)
    return text + " " * (width - _columns(text))


def _right(value, width):
    text = str(value)
    return " " * (width - _columns(text)) + text


def _number(value):
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _percent(fraction):
    """0.923 -> "92.3%"; None (nothing to measure) -> "—"."""
    return "—" if fraction is None else f"{fraction * 100:.1f}%"


def _or_dash(value):
    return "—" if value is None else str(value)


def render_calendar_notice(language, context):
    """The weekly email to a contract's admins while next year's holiday schedule is only estimated.

    `context`: contract_name, contract_id, country, year, and `call`: the HTTP call that publishes the
    schedule (an example curl command line, placeholders marked).
    """
    _check_language(language)
    values = {key: _string(context[key]) for key in ("contract_name", "contract_id", "country", "year", "call")}
    values["contract_name"] = one_line(values["contract_name"])
    return _assemble("calendar_notice", language, values, _escaped(values))


def render_requester_bounce(language, context):
    """The email to a contract's admins when a request's notification bounced permanently at the
    requester's address: the customer hears nothing more until someone reaches them another way.

    `context`: contract_name, contract_id, request_id, subject, requester_name, address (the address
    that bounced), notification (the kind of email that bounced), bounced_at (local time, formatted)
    and diagnostic (the receiving server's answer, may be empty).
    """
    _check_language(language)
    keys = ("contract_name", "contract_id", "request_id", "subject", "requester_name", "address", "notification",
            "bounced_at", "diagnostic")
    values = {key: one_line(_string(context[key])) for key in keys}
    words = _phrases(language)
    values["notification"] = words["notification"].get(values["notification"], values["notification"])
    values["diagnostic"] = values["diagnostic"] or words["phrase"]["nobody"]
    return _assemble("requester_bounce", language, values, _escaped(values))


_REPORT_ROW_HTML = (_ROW_LABEL_HTML +
                    '<td style="text-align:right;padding:6px 0;border-bottom:1px solid #eeeeee;">{value}</td></tr>')


def render_customer_report(language, context):
    """The monthly service report to the customer's `notify.customer_reports`: the month's requests,
    breaches, penalties, KPIs against their targets, each interaction channel and each category.

    `context`: contract_name, contract_id, month ("YYYY-MM"), `report` (the monthly report document)
    and `answer_within` (channel -> its promise, e.g. "60s"). The CSV of the days goes as an attachment.
    """
    _check_language(language)
    labels, report = _phrases(language)["customer_report"], context["report"]

    def against(kpi):
        return labels["actual_target"].format(actual=_percent(kpi["actual"]), target=_percent(kpi["target"]))

    rows = [(labels[key], report["requests"][key]) for key in ("received", "responded", "resolved")]
    rows += [(labels[metric], count) for metric, count in report["breaches"].items()]
    rows.append((labels["penalties"].format(currency=report["currency"]), _number(report["penalties"]["total"])))
    rows += [(labels[key], against(report["kpi"][key])) for key in ("availability", "satisfaction", "resolution_rate")]
    for channel, counts in report["interactions"].items():
        names = {"channel": channel, "within": context["answer_within"].get(channel, "—")}
        if channel in report["kpi"]["service_level"]:
            rows.append((labels["service_level"].format(**names), against(report["kpi"]["service_level"][channel])))
        rows += [(labels["offered"].format(**names), counts["offered"]),
                 (labels["p90"].format(**names), _or_dash(counts["p90_answer_seconds"]))]
    for category, counts in report["by_category"].items():
        rows += [(labels["category_received"].format(category=category), counts["received"]),
                 (labels["category_breaches"].format(category=category), sum(counts["breaches"].values()))]
    values = {"contract_name": one_line(_string(context["contract_name"])),
              "contract_id": _string(context["contract_id"]), "month": _string(context["month"])}
    width = max(_columns(label) for label, _ in rows)
    text_rows = "\n".join(f"{ljust_columns(label, width)}  {_right(value, 12)}" for label, value in rows)
    html_rows = "\n".join(_REPORT_ROW_HTML.format(label=html.escape(label), value=html.escape(str(value)))
                          for label, value in rows)
    return _assemble("customer_report", language, values | {"rows": text_rows},
                     _escaped(values) | {"rows": html_rows, "value_heading": html.escape(labels["value"])}, values)


# Which notifications go first when a scan cannot send everything at once: breach alerts, then the
# reminders and customer mail, then warnings (and within a rank, the earlier deadline).
URGENCY = {"breach": 0, "progress_reminder": 1, "warning": 3}
CUSTOMER_URGENCY = 2
REPORT_URGENCY = 4

# The alerts a retry renders anew from the request as it reads then (alerts.current_notification),
# never as stored: one that no longer holds is not sent, and one of an erased request reads erased.
# Every other email is sent as it was rendered when it was created.
RECHECKED_KINDS = ALERT_KINDS
