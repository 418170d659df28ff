"""Notification emails (see docs/clock.md): every kind in zh-CN and en carries the request id, the priority,
the deadline and the remaining time; values are escaped in HTML. (The MIME message: test_outbox_messages.py.)"""
import hashlib
import re
import string
import tomllib
from collections.abc import Mapping
from html.parser import HTMLParser
from importlib import resources

import pytest
import yaml
from wcwidth import wcswidth

from chalicelib.core import emails
from chalicelib.core.emails import KINDS, LANGUAGES, REQUIRED_KEYS, Rendered, format_minutes, render
from chalicelib.core.policy import EXAMPLE_PRIORITIES

# In the order their event types are declared (chalicelib/core/events.py).
REQUESTER_KINDS = ("acknowledgement", "respond", "progress", "await_customer", "resolve")
PROVIDER_KINDS = ("warning", "breach", "progress_reminder")
TAGS = {
    "zh-CN": {"acknowledgement": "[已受理]", "respond": "[已回复]", "progress": "[处理进展]", "resolve": "[已解决]",
              "await_customer": "[待补充信息]", "warning": "[SLA 预警]", "breach": "[SLA 违约]",
              "progress_reminder": "[SLA 进度提醒]"},
    "en": {"acknowledgement": "[Received]", "respond": "[Response]", "progress": "[Progress update]",
           "resolve": "[Resolved]", "await_customer": "[Information needed]", "warning": "[SLA warning]",
           "breach": "[SLA breach]", "progress_reminder": "[SLA progress reminder]"},
}
PRIORITY = {"zh-CN": "紧急", "en": "Urgent"}
DEADLINE = "2026-02-13 17:00 (Asia/Shanghai)"
DUE = "2026-02-16 09:30 (Asia/Shanghai)"


def context(kind, language="zh-CN", **changes):
    """A full context for `kind`, as the caller (chalicelib.core.alerts) builds it."""
    values = {
        "contract_name": "Acme 年度运维服务协议",
        "request_id": "req_7Q2M",
        "subject": "系统无法登录",
        "priority": "urgent",
        "requester_name": "张三",
    }
    if kind in REQUESTER_KINDS:
        values |= {"received_at": "2026-02-13 16:30 (Asia/Shanghai)", "first_response_due": DUE,
                   "deadline": DEADLINE, "remaining": format_minutes(25, language),
                   "note": "已为您重置密码，请重新登录。"}
    else:
        values |= {"metric": "progress_update" if kind == "progress_reminder" else "first_response",
                   "deadline": DEADLINE, "remaining": format_minutes(25, language), "threshold": "80%", "cycle": "2"}
    return values | changes


# A day of the nightly tally and a month's report, with an interaction channel and a category: every row.
TALLY_CONTEXT = {
    "contract_name": "Acme", "contract_id": "acme", "date": "2026-11-23", "currency": "CNY",
    "day": {"received": 3, "responded": 2, "resolved": 1, "penalties": 150.5,
            "breaches": {"first_response": {"high": 2}, "resolution": {"low": 1}}},
    "month": {"received": 30, "responded": 20, "resolved": 10, "penalties": 1500,
              "breaches": {"first_response": 5, "progress_update": 1}},
    "interactions": {"phone": {"answer_within": "60s", "target": 0.9,
                               "day": {"offered": 10, "service_level": 0.923, "p90_answer_seconds": 40},
                               "month": {"offered": 100, "service_level": None, "p90_answer_seconds": None}}},
}
REPORT_CONTEXT = {
    "contract_name": "Acme", "contract_id": "acme", "month": "2026-11", "answer_within": {"phone": "60s"},
    "report": {
        "requests": {"received": 5, "responded": 4, "resolved": 3}, "currency": "CNY",
        "breaches": {"first_response": 1, "progress_update": 0, "resolution": 2}, "penalties": {"total": 300},
        "kpi": {"availability": {"actual": 0.999, "target": 0.995}, "satisfaction": {"actual": None, "target": 0.9},
                "resolution_rate": {"actual": 0.5, "target": 0.8},
                "service_level": {"phone": {"actual": 0.91, "target": 0.9}}},
        "interactions": {"phone": {"offered": 40, "p90_answer_seconds": 33},
                         "chat": {"offered": 2, "p90_answer_seconds": None}},
        "by_category": {"complaint": {"received": 2, "breaches": {"resolution": 1}}},
    },
}


def every_kind_and_language():
    return [(kind, language) for kind in KINDS for language in LANGUAGES]


def test_the_interface_lists_eight_kinds_and_two_languages():
    assert KINDS == REQUESTER_KINDS + PROVIDER_KINDS
    assert LANGUAGES == ("zh-CN", "en")
    assert set(REQUIRED_KEYS) == set(KINDS)


@pytest.mark.parametrize("kind, language", every_kind_and_language())
def test_every_kind_renders_in_both_languages_with_the_facts_design_requires(kind, language):
    rendered = render(kind, language, context(kind, language))
    assert isinstance(rendered, Rendered)
    assert rendered.subject.startswith(TAGS[language][kind] + " ")
    assert "req_7Q2M" in rendered.subject
    assert "\n" not in rendered.subject
    for body in (rendered.text, rendered.html):
        assert "req_7Q2M" in body
        assert PRIORITY[language] in body
        assert "系统无法登录" in body
        assert "$" not in body
    assert "$" not in rendered.subject
    remaining = format_minutes(25, language)
    for body in (rendered.text, rendered.html):  # every email carries the deadline and time left
        assert DEADLINE in body and remaining in body
    if kind in PROVIDER_KINDS:
        for body in (rendered.text, rendered.html):
            assert "Acme 年度运维服务协议" in body and "张三" in body
        assert PRIORITY[language] in rendered.subject
    if kind == "acknowledgement":
        assert DUE in rendered.text and DUE in rendered.html


@pytest.mark.parametrize("kind, language", every_kind_and_language())
def test_the_text_body_is_plain_and_the_html_body_is_a_small_self_contained_page(kind, language):
    rendered = render(kind, language, context(kind, language))
    assert "<" not in rendered.text
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in rendered.html
    assert '<meta charset="utf-8">' in rendered.html
    assert not re.search(r"(?i)\b(src|href)=|<link|<script|<style|url\(", rendered.html)
    if kind in PROVIDER_KINDS:
        assert "<table" in rendered.html and "<th" in rendered.html


@pytest.mark.parametrize("language, expected", [("zh-CN", ("紧急", "高", "中", "低")),
                                                ("en", ("Urgent", "High", "Medium", "Low"))])
def test_priorities_are_localized(language, expected):
    for raw, label in zip(("urgent", "high", "medium", "low"), expected, strict=True):
        rendered = render("warning", language, context("warning", language, priority=raw))
        assert label in rendered.subject and label in rendered.text and label in rendered.html


@pytest.mark.parametrize("language, labels", [
    ("zh-CN", {"first_response": "首次响应", "progress_update": "进度更新", "resolution": "解决"}),
    ("en", {"first_response": "first response", "progress_update": "progress update", "resolution": "resolution"}),
])
def test_metrics_are_localized_in_warnings_and_breaches(language, labels):
    for kind in ("warning", "breach"):
        for raw, label in labels.items():
            rendered = render(kind, language, context(kind, language, metric=raw))
            assert label in rendered.subject and label in rendered.text and label in rendered.html
            assert "first_response" not in rendered.text and "progress_update" not in rendered.text


def test_an_unknown_priority_or_metric_is_shown_as_given():
    rendered = render("breach", "zh-CN", context("breach", priority="vip", metric="satisfaction"))
    assert "vip" in rendered.text and "satisfaction" in rendered.text


def test_the_progress_cycle_is_shown_for_progress_metrics_only():
    progress = render("breach", "zh-CN", context("breach", metric="progress_update", cycle="3")).text
    assert "进度更新（第 3 个周期）" in progress
    first = render("breach", "zh-CN", context("breach", metric="first_response", cycle="0")).text
    assert "周期" not in first
    reminder = render("progress_reminder", "en", context("progress_reminder", "en", cycle="4")).text
    assert "Current progress cycle: 4" in reminder


def test_the_warning_names_its_threshold():
    for language in LANGUAGES:
        rendered = render("warning", language, context("warning", language, threshold="50%"))
        assert "50%" in rendered.text and "50%" in rendered.html


def test_breaches_read_as_overdue_with_a_negative_remaining_time():
    rendered = render("breach", "zh-CN", context("breach", remaining=format_minutes(-30, "zh-CN")))
    assert "已超时 30 分钟" in rendered.text
    rendered = render("breach", "en", context("breach", "en", remaining=format_minutes(-95, "en")))
    assert "1 h 35 min overdue" in rendered.text


def test_values_are_escaped_in_html_and_verbatim_in_text_and_subject():
    hostile = context("respond", subject='<script>alert("x")</script> & co', requester_name="<b>王五</b>",
                      note="<img src=x onerror=alert(1)>", contract_name="A&B")
    rendered = render("respond", "en", hostile)
    assert '<script>alert("x")</script> & co' in rendered.text
    assert '<script>alert("x")</script> & co' in rendered.subject
    assert "<img src=x onerror=alert(1)>" in rendered.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in rendered.html
    assert "&lt;b&gt;王五&lt;/b&gt;" in rendered.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.html
    assert "A&amp;B" in rendered.html
    assert "<script" not in rendered.html and "<img" not in rendered.html and "<b>" not in rendered.html


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
def test_provider_values_are_escaped_in_html_too(kind):
    rendered = render(kind, "zh-CN", context(kind, deadline="<i>17:00</i>", remaining="<u>25</u>"))
    assert "&lt;i&gt;17:00&lt;/i&gt;" in rendered.html and "&lt;u&gt;25&lt;/u&gt;" in rendered.html
    assert "<i>" not in rendered.html and "<u>" not in rendered.html
    assert "<i>17:00</i>" in rendered.text


def test_a_dollar_sign_in_a_value_is_kept_and_not_substituted():
    rendered = render("resolve", "en", context("resolve", subject="Refund $amount of $100", note="$note"))
    assert "Refund $amount of $100" in rendered.subject and "Refund $amount of $100" in rendered.text
    assert "$note" in rendered.text


def test_subjects_are_one_line_even_when_values_have_line_breaks():
    rendered = render("acknowledgement", "zh-CN", context("acknowledgement", subject="第一行\r\n第二行\n"))
    assert rendered.subject == "[已受理] 服务请求 req_7Q2M：第一行 第二行"
    assert "第一行\r\n第二行\n" in rendered.text


@pytest.mark.parametrize("kind, language", [(k, lang) for k in REQUESTER_KINDS for lang in LANGUAGES])
def test_the_note_block_appears_only_when_a_note_is_given(kind, language):
    with_note = render(kind, language, context(kind, language, note="第一步已完成。\n第二步进行中。"))
    assert "第一步已完成。\n第二步进行中。" in with_note.text
    assert "第一步已完成。<br>\n第二步进行中。" in with_note.html
    heading = emails._phrases(language)["note_heading"][kind]
    assert heading in with_note.text and heading in with_note.html
    for empty in ("", "  \n"):
        without = render(kind, language, context(kind, language, note=empty))
        assert heading not in without.text and heading not in without.html
        assert "\n\n\n" not in without.text
        assert "border-left" not in without.html


@pytest.mark.parametrize("kind, language", every_kind_and_language())
def test_a_provisional_deadline_carries_one_line_saying_the_holiday_schedule_is_estimated(kind, language):
    line = emails._phrases(language)["phrase"]["provisional"]
    provisional = render(kind, language, context(kind, language, provisional=True))
    assert provisional.text.count(line) == 1 and provisional.html.count(line) == 1
    deadline_line = next(n for n, text in enumerate(provisional.text.splitlines()) if text.endswith(DEADLINE))
    assert provisional.text.splitlines()[deadline_line + 1] == line  # right under the deadline it qualifies
    assert line not in provisional.subject
    for plain in (context(kind, language), context(kind, language, provisional=False)):
        rendered = render(kind, language, plain)
        assert line not in rendered.text and line not in rendered.html
        assert rendered.text.splitlines()[deadline_line + 1] != ""


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_calendar_notice_names_the_year_and_the_call_that_publishes_it(language):
    call = 'curl -X PUT "$SLA/calendars/CN/2027" -d \'{"holidays": ["2027-MM-DD"]}\''
    rendered = emails.render_calendar_notice(language, {"contract_name": "Acme <运维>", "contract_id": "acme",
                                                        "country": "CN", "year": 2027, "call": call})
    assert "2027" in rendered.subject and "CN" in rendered.subject and "\n" not in rendered.subject
    assert call in rendered.text and "Acme <运维>" in rendered.text
    assert "PUT &quot;$SLA/calendars/CN/2027&quot;" in rendered.html and "Acme &lt;运维&gt;" in rendered.html
    assert rendered.html.startswith("<!DOCTYPE html>") and "<pre" in rendered.html


@pytest.mark.parametrize("language, label", [("zh-CN", "受理确认"), ("en", "acknowledgement")])
def test_the_requester_bounce_names_the_request_the_address_and_the_server_s_answer(language, label):
    values = {"contract_name": "Acme <运维>", "contract_id": "acme", "request_id": "req_1", "subject": "无法\n登录",
              "requester_name": "张三", "address": "zhang@customer.example", "notification": "acknowledgement",
              "bounced_at": "2026-11-23 10:05 (Asia/Shanghai)", "diagnostic": "smtp; 550 5.1.1 <user> unknown"}
    rendered = emails.render_requester_bounce(language, values)
    assert "req_1" in rendered.subject and "zhang@customer.example" in rendered.subject
    assert "\n" not in rendered.subject
    for part in (label, "无法 登录", "2026-11-23 10:05", "smtp; 550 5.1.1 <user> unknown"):
        assert part in rendered.text, part
    assert "550 5.1.1 &lt;user&gt; unknown" in rendered.html and "Acme &lt;运维&gt;" in rendered.html
    no_answer = emails.render_requester_bounce(language, {**values, "diagnostic": ""})
    assert emails._phrases(language)["phrase"]["nobody"] in no_answer.text


def test_the_acknowledgement_promises_the_first_response_deadline_only_when_there_is_one():
    assert "我们将在 2026-02-16 09:30 (Asia/Shanghai) 前给予您首次答复。" in render(
        "acknowledgement", "zh-CN", context("acknowledgement")).text
    assert "We will respond by 2026-02-16 09:30 (Asia/Shanghai)." in render(
        "acknowledgement", "en", context("acknowledgement")).text
    for language in LANGUAGES:
        rendered = render("acknowledgement", language, context("acknowledgement", language, first_response_due=""))
        assert emails._phrases(language)["phrase"]["no_due"] in rendered.text
        assert emails._phrases(language)["phrase"]["no_due"] in rendered.html
        assert "2026-02-16" not in rendered.text


def test_the_greeting_uses_the_requester_name_when_there_is_one():
    assert render("respond", "zh-CN", context("respond")).text.startswith("张三，您好：\n")
    assert render("respond", "en", context("respond", "en")).text.startswith("Dear 张三,\n")
    assert render("respond", "zh-CN", context("respond", requester_name="")).text.startswith("您好：\n")
    assert render("respond", "en", context("respond", "en", requester_name="")).text.startswith("Hello,\n")
    rendered = render("warning", "zh-CN", context("warning", requester_name=""))
    assert "请求人：—" in rendered.text


def test_the_resolve_email_invites_a_rating_from_1_to_5():
    assert "1–5 分" in render("resolve", "zh-CN", context("resolve")).text
    assert "1 to 5" in render("resolve", "en", context("resolve", "en")).text


def test_the_await_customer_email_says_the_clock_is_paused():
    assert "暂停" in render("await_customer", "zh-CN", context("await_customer")).text
    assert "paused" in render("await_customer", "en", context("await_customer", "en")).text


@pytest.mark.parametrize("kind, language", [("remind", "zh-CN"), ("", "en"), (None, "en")])
def test_an_unknown_kind_is_refused(kind, language):
    with pytest.raises(ValueError, match="kind"):
        render(kind, language, context("respond"))


@pytest.mark.parametrize("language", ["zh", "zh-TW", "EN", "", None])
def test_an_unknown_language_is_refused(language):
    with pytest.raises(ValueError, match="language"):
        render("respond", language, context("respond"))
    with pytest.raises(ValueError, match="language"):
        format_minutes(5, language)


@pytest.mark.parametrize("kind", KINDS)
def test_every_missing_required_key_raises_key_error_naming_it(kind):
    for key in REQUIRED_KEYS[kind]:
        partial = context(kind)
        del partial[key]
        with pytest.raises(KeyError) as raised:
            render(kind, "zh-CN", partial)
        assert raised.value.args == (key,)


@pytest.mark.parametrize("kind, language", every_kind_and_language())
def test_the_required_keys_are_enough_and_the_templates_use_only_known_names(kind, language):
    minimal = {key: value for key, value in context(kind, language).items() if key in REQUIRED_KEYS[kind]}
    render(kind, language, minimal)
    derived = {"priority_label", "metric_label", "metric_detail", "requester_display", "greeting", "note_block",
               "due_sentence", "missed_line", "provisional_line", "provisional_row"}
    derived |= set(emails._TABLE_STYLES) | set(emails._PARTIALS)
    for part in ("subject.txt", "txt", "html"):
        template = emails._template(language, kind, part)
        assert template.is_valid()
        assert set(template.get_identifiers()) <= set(REQUIRED_KEYS[kind]) | derived


def test_every_html_body_sits_in_the_shared_layout():
    page = render("breach", "zh-CN", context("breach", "zh-CN")).html
    assert page.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in page and page.rstrip().endswith("</html>")
    assert "$" not in page and 'style="text-align:left' in page


def test_templates_are_read_once_and_cached():
    emails._template.cache_clear()
    render("breach", "en", context("breach", "en"))
    misses = emails._template.cache_info().misses
    render("breach", "en", context("breach", "en"))
    assert emails._template.cache_info().misses == misses == 4  # subject, text, HTML, shared facts rows


@pytest.mark.parametrize("minutes, zh, en", [
    (0, "0 分钟", "0 min"),
    (45, "45 分钟", "45 min"),
    (60, "1 小时", "1 h"),
    (95, "1 小时 35 分钟", "1 h 35 min"),
    (1440, "24 小时", "24 h"),
    (1505, "25 小时 5 分钟", "25 h 5 min"),
    (-30, "已超时 30 分钟", "30 min overdue"),
    (-95, "已超时 1 小时 35 分钟", "1 h 35 min overdue"),
    (-120, "已超时 2 小时", "2 h overdue"),
    (None, "—", "—"),
    (95.9, "1 小时 35 分钟", "1 h 35 min"),
    (0.5, "0 分钟", "0 min"),
    (-0.5, "已超时 1 分钟", "1 min overdue"),
    (-30.2, "已超时 31 分钟", "31 min overdue"),
])
def test_format_minutes_shows_business_time_for_humans(minutes, zh, en):
    assert format_minutes(minutes, "zh-CN") == zh
    assert format_minutes(minutes, "en") == en


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "95", True])
def test_format_minutes_refuses_what_is_not_a_number(bad):
    with pytest.raises(ValueError):
        format_minutes(bad, "en")


def test_rendered_is_a_frozen_value():
    rendered = Rendered("s", "t", "h")
    assert rendered == Rendered(subject="s", text="t", html="h")
    with pytest.raises(AttributeError):
        rendered.subject = "other"


@pytest.mark.parametrize("language, line", [("zh-CN", "已错过 72 个进度周期"),
                                            ("en", "72 progress cycles have been missed")])
def test_a_catch_up_breach_alert_says_how_many_progress_cycles_were_missed(language, line):
    catch_up = context("breach", language) | {"metric": "progress_update", "cycle": "72", "missed": "72"}
    rendered = render("breach", language, catch_up)
    assert line in rendered.text and line in rendered.html
    single = render("breach", language, catch_up | {"missed": "1"})
    assert line not in single.text and "missed" not in single.text.split("\n")[2:5]


def phrases_file(language):
    source = resources.files("chalicelib.core").joinpath("templates", language, "phrases.toml")
    return tomllib.loads(source.read_text(encoding="utf-8"))


def placeholders(wording):
    return {name for _, name, _, _ in string.Formatter().parse(wording) if name is not None}


def test_the_languages_are_the_template_folders_and_the_contract_s_choices():
    templates = resources.files("chalicelib.core").joinpath("templates")
    folders = {entry.name for entry in templates.iterdir() if entry.is_dir()}
    assert folders == set(LANGUAGES)
    spec = yaml.safe_load((resources.files("chalicelib") / "openapi.yaml").read_text(encoding="utf-8"))
    assert spec["components"]["schemas"]["Notify"]["properties"]["language"]["enum"] == list(LANGUAGES)


def test_every_language_s_phrases_have_the_same_keys_with_the_same_placeholders():
    first, *others = LANGUAGES
    expected = {(section, key): placeholders(wording)
                for section, words in phrases_file(first).items() for key, wording in words.items()}
    assert all(isinstance(wording, str) for words in phrases_file(first).values() for wording in words.values())
    for language in others:
        found = {(section, key): placeholders(wording)
                 for section, words in phrases_file(language).items() for key, wording in words.items()}
        assert found.keys() == expected.keys(), (language, found.keys() ^ expected.keys())
        assert found == expected, (language, {k: (v, expected[k]) for k, v in found.items() if v != expected[k]})


class Recorded(Mapping):
    """A section of phrases that notes each key read."""

    def __init__(self, section, words, seen):
        self.section, self.words, self.seen = section, words, seen

    def __getitem__(self, key):
        self.seen.add((self.section, key))
        return self.words[key]

    def __iter__(self):
        raise AssertionError("emails read phrases by key, never by listing a section")

    def __len__(self):
        return len(self.words)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_phrase_is_used_by_some_email(language, monkeypatch):
    real, seen = emails._phrases, set()
    monkeypatch.setattr(emails, "_phrases", lambda lang: {section: Recorded(section, words, seen)
                                                          for section, words in real(lang).items()})
    changes = [{"priority": priority} for priority in EXAMPLE_PRIORITIES]
    changes += [{"metric": metric, "cycle": "3", "missed": "3"}
                for metric in ("first_response", "progress_update", "resolution")]
    changes += [{"requester_name": "", "first_response_due": "", "provisional": True}]
    for kind in KINDS:
        for change in changes:
            render(kind, language, context(kind, language, **change))
    format_minutes(-95, language)
    emails.render_daily_tally(language, TALLY_CONTEXT)
    emails.render_customer_report(language, REPORT_CONTEXT)
    for notification in REQUESTER_KINDS:
        emails.render_requester_bounce(language, {
            "contract_name": "Acme", "contract_id": "acme", "request_id": "req_1", "subject": "s", "requester_name": "",
            "address": "a@b.example", "notification": notification, "bounced_at": "t", "diagnostic": ""})
    every = {(section, key) for section, words in phrases_file(language).items() for key in words}
    assert every - seen == set()


def value_columns(text, widths):
    """The display column where each row's first value field starts, for the table of a plain-text
    report (its third paragraph): values are right-aligned in fields of `widths` columns, two apart."""
    starts = set()
    for line in text.split("\n\n")[2].splitlines():
        values = re.split(r" {2,}", line.strip())[-len(widths):]
        fields = sum(max(width, wcswidth(value)) for width, value in zip(widths, values, strict=True))
        starts.add(wcswidth(line) - fields - 2 * (len(widths) - 1))
    return starts


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_plain_text_tally_and_report_line_their_columns_up_in_display_columns(language):
    tally = emails.render_daily_tally(language, TALLY_CONTEXT).text
    report = emails.render_customer_report(language, REPORT_CONTEXT).text
    assert len(value_columns(tally, (8, 8))) == 1, tally
    assert len(value_columns(report, (12,))) == 1, report
    if language == "zh-CN":  # a Chinese label takes two columns a character, as a terminal shows it
        assert "违约：首次响应                                    2         5\n" in tally
        assert "\n已解决                                3\n" in report


class Tables(HTMLParser):
    """Each <table> of an HTML body: its attributes, and the attributes of each header cell in it."""

    def __init__(self, page):
        super().__init__()
        self.tables = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"attrs": dict(attrs), "th": []})
        elif tag == "th":
            self.tables[-1]["th"].append(dict(attrs))


def every_html_body():
    for language in LANGUAGES:
        for kind in KINDS:
            yield f"{kind} {language}", render(kind, language, context(kind, language, provisional=True)).html
        yield f"daily_tally {language}", emails.render_daily_tally(language, TALLY_CONTEXT).html
        yield f"customer_report {language}", emails.render_customer_report(language, REPORT_CONTEXT).html


def test_tables_with_header_cells_are_data_tables_whose_headers_name_their_scope():
    """A layout table (role="presentation") must not have header cells; the facts, tally and report
    tables are data tables: each <th> says whether it heads a row or a column."""
    seen = 0
    for name, page in every_html_body():
        for table in Tables(page).tables:
            assert table["attrs"].get("role") != "presentation" or not table["th"], name
            for cell in table["th"]:
                assert cell.get("scope") in ("row", "col"), (name, cell)
                seen += 1
    assert seen > 100


# What each renderer gives today for fixed contexts, pinned by digest: a change of layout, wording or
# escaping in any of them (a refactoring of how they assemble subject, text and HTML) shows here.
RENDERING_PINS = {
    "zh-CN": {
        "acknowledgement": "5745fe6515bdcfb9",
        "acknowledgement+": "dd765a75f890e9be",
        "respond": "8a9dbf66c41a76bf",
        "respond+": "79d1b8faa3eb070c",
        "progress": "eeeca47b4111d801",
        "progress+": "ef0f9637675a48c5",
        "resolve": "50bc6baaf3c2a676",
        "resolve+": "7ba69a9d4307a165",
        "await_customer": "82f1bb9b4d9cffb5",
        "await_customer+": "853b02bfe1a67ab5",
        "warning": "58fdd7daf72e9087",
        "warning+": "df67868e5c340d67",
        "breach": "40b5e93b6710023c",
        "breach+": "9526eaeb9c68d50d",
        "progress_reminder": "c40abb8772663f72",
        "progress_reminder+": "d5517b2e8df15afe",
        "daily_tally": "b5f686e9b16c529b",
        "customer_report": "2cdf6628343459b1",
        "calendar_notice": "b61d13ebef43b784",
        "requester_bounce": "8dc7c2873659a81e",
    },
    "en": {
        "acknowledgement": "76479d9c9786edf7",
        "acknowledgement+": "4c39fd72b95cb5d9",
        "respond": "48ffe7ea98581dd3",
        "respond+": "ef4992bc7914b3fd",
        "progress": "a09c72b824663da7",
        "progress+": "0c7c866e5454e6d0",
        "resolve": "0c564517995b337e",
        "resolve+": "b9e820e79205ee7a",
        "await_customer": "d9971b7cfb88e3a2",
        "await_customer+": "199d365b72c05a6d",
        "warning": "e56b13c70bd92e11",
        "warning+": "19fb77927c600d92",
        "breach": "9451d54c4534ec30",
        "breach+": "343cbabfe5cc5f29",
        "progress_reminder": "36baeb8015bcaf6c",
        "progress_reminder+": "26886a072532f252",
        "daily_tally": "a5a9a50effa63f01",
        "customer_report": "ede5d681f202b544",
        "calendar_notice": "f8fb8afe6d744cf8",
        "requester_bounce": "3eaf6b3dbbcc3f2e",
    },
}


def _every_renderer(language):
    for kind in KINDS:
        yield kind, render(kind, language, context(kind, language))
        yield f"{kind}+", render(kind, language, context(kind, language, provisional=True, note="", missed="3",
                                                          requester_name=""))
    yield "daily_tally", emails.render_daily_tally(language, TALLY_CONTEXT)
    yield "customer_report", emails.render_customer_report(language, REPORT_CONTEXT)
    yield "calendar_notice", emails.render_calendar_notice(language, {
        "contract_name": "Acme <运维>", "contract_id": "acme", "country": "CN", "year": "2027",
        "call": "curl -X PUT 'https://x/calendars/CN/2027' -d @<file>"})
    yield "requester_bounce", emails.render_requester_bounce(language, {
        "contract_name": "Acme", "contract_id": "acme", "request_id": "req_1", "subject": "Login & <fails>",
        "requester_name": "Zhang", "address": "z@example.com", "notification": "respond",
        "bounced_at": "2026-02-13 16:30", "diagnostic": "550 no such user"})


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_renderer_gives_byte_for_byte_what_it_gave_when_pinned(language):
    digests = {name: hashlib.sha256("\x00".join((r.subject, r.text, r.html)).encode()).hexdigest()[:16]
               for name, r in _every_renderer(language)}
    assert digests == RENDERING_PINS[language]
