"""The documentation lives in the repository and holds together: every relative link resolves, the
README stays short, nothing points at a file outside the repository, and the examples of the README's
tour and of docs/api.md are what the service answers."""
import importlib.util
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from openapi_check import SPEC

from conftest import DEMO_CONTRACT, contract_with_tokens

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
        "bench/README.md", "infra/README.md"]
README_MAX_LINES = 200
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Built from pieces so that this file does not mention them itself.
OUTSIDE_REFERENCES = ("DESIGN" + ".md", ".." + "/shared")


def relative_links(text):
    """Link targets of a markdown text that point into the repository (code is not markdown)."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)
    return [t for t in targets if not EXTERNAL.match(t)]


def anchors(text):
    """The anchors GitHub gives a markdown text's headings: lower case, punctuation dropped, spaces to
    hyphens, repeats numbered."""
    seen, found = {}, set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def repository_files():
    """Tracked files plus new ones not ignored, as git sees them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode("utf-8").split("\0")
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def test_the_documents_exist():
    missing = [name for name in DOCS if not (ROOT / name).is_file()]
    assert not missing
    assert {"api.md", "contract.md", "clock.md", "deploy.md", "local.md"} <= {Path(d).name for d in DOCS}


@pytest.mark.parametrize("document", DOCS)
def test_every_relative_link_resolves_to_a_file_and_heading_in_the_repository(document):
    path = ROOT / document
    broken = []
    for target in relative_links(path.read_text("utf-8")):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text("utf-8")):
            broken.append(target)
    assert not broken, f"{document} links to {broken}"


def test_the_link_finder_sees_links_and_skips_code_and_urls():
    text = ("[api](docs/api.md#errors) [web](https://example.com) [anchor](#tests) `[not](a/link.md)`\n"
            "[ref]: infra/README.md\n"
            "```\n[neither](in/code.md)\n```\n")
    assert sorted(relative_links(text)) == ["#tests", "docs/api.md#errors", "infra/README.md"]


def test_anchors_follow_github_headings():
    text = "# Title\n## `make run` in detail\n## Calendars: next year\n## Title\n```\n# a comment\n```\n"
    assert anchors(text) == {"title", "make-run-in-detail", "calendars-next-year", "title-1"}


def test_the_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text("utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES


def test_no_file_refers_to_documents_outside_the_repository():
    offenders = []
    for path in repository_files():
        content = path.read_bytes()
        offenders += [f"{path.relative_to(ROOT)}: {ref}" for ref in OUTSIDE_REFERENCES if ref.encode() in content]
    assert not offenders


# --- the examples of the README and docs/api.md, run -------------------------------------------------

JSON_FENCE = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)
SECTION = re.compile(r"^#{2,3} (.+)$", re.MULTILINE)


def section(text, heading):
    """The text under the first heading that starts with `heading`, up to the next heading of any level."""
    starts = [(m.start(), m.group(1)) for m in SECTION.finditer(text)] + [(len(text), None)]
    for (start, title), (end, _) in zip(starts, starts[1:], strict=False):
        if title.startswith(heading):
            return text[start:end]
    raise AssertionError(f"no section {heading!r}")


def json_examples(text):
    """(heading, parsed JSON) of every ```json block, under the nearest heading above it."""
    headings = [(m.start(), m.group(1)) for m in SECTION.finditer(text)]
    found = []
    for block in JSON_FENCE.finditer(text):
        heading = [title for start, title in headings if start < block.start()][-1]
        found.append((heading, json.loads(block.group(1))))
    return found


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"{name}_for_docs", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ThroughTheTestClient:
    """scripts/demo.py's Api, answered by chalice's test client instead of a running `make run`."""

    def __init__(self, client):
        self.client = client

    def call(self, method, path, token, body=None, headers=None):
        return self.client.as_token(token).call(method, path, body, headers=headers)


TOUR_DAYS = [datetime(2026, 3, 2, 10, tzinfo=ZoneInfo("Asia/Shanghai")),
             datetime(2027, 6, 15, 22, tzinfo=ZoneInfo("Asia/Shanghai"))]


@pytest.mark.parametrize("today", TOUR_DAYS, ids=lambda day: day.date().isoformat())
def test_the_readme_tour_answers_what_it_shows_whatever_the_date(admin, mailbox, today):
    """The tour's curl calls, with the jq filters it shows done in Python, on two days a year apart."""
    tour = section((ROOT / "README.md").read_text("utf-8"), "A five-minute tour")
    creation = json.loads(re.search(r"-d '(\{.*?\})'", tour, re.DOTALL).group(1))
    [due_dates] = [example for _, example in json_examples(tour)]
    events = [json.loads(body) for body in re.findall(r"'(\{\"type\".*?\})'", tour)]
    statuses = re.search(r"jq -r \.status +# (.+)$", tour, re.MULTILINE).group(1).split(", ")
    client_read = json.loads(re.search(r"jq -c '\{status, breached, penalty\}'\n#\s+(\{.*\})$", tour,
                                       re.MULTILINE).group(1))
    assert "jq '.sla | map_values(.due_at)'" in tour and len(events) == len(statuses) == 3
    with time_machine.travel(today, tick=False):
        _, agent, client = contract_with_tokens(admin, DEMO_CONTRACT, creation["contract_id"])
        status, created = agent.post("/requests", creation)
        assert status == 201 and {metric: sla["due_at"] for metric, sla in created["sla"].items()} == due_dates
        answers = [agent.post(f"/requests/{created['request_id']}/events", event)[1] for event in events]
        assert [answer["status"] for answer in answers] == statuses
        read = client.get(f"/requests/{created['request_id']}")[1]
        assert {key: read[key] for key in ("status", "breached", "penalty")} == client_read


def test_the_tour_and_make_demo_post_to_contracts_of_their_own():
    tour = section((ROOT / "README.md").read_text("utf-8"), "A five-minute tour")
    seed = load_script("seed")
    assert seed.DEMO_ID != seed.MAKE_DEMO_ID
    assert re.findall(r'"contract_id": "([^"]+)"', tour) == [seed.DEMO_ID]
    assert f"$SLA/contracts/{seed.MAKE_DEMO_ID}/reports?month=2026-10" in tour  # the demo's October, its own


API_MD = ROOT / "docs" / "api.md"
# Every ```json block of docs/api.md, in order: the heading it sits under, and what it is an example of
# (a request body, or an answer with its status) for an operation of the spec, at a concrete path.
API_EXAMPLES = [
    ("Conventions", ("answer", "PUT", "/contracts/demo", 400)),
    ("`GET /contracts/{contract_id}/reports", ("answer", "GET", "/contracts/demo/reports", 200)),
    ("`POST /contracts/{contract_id}/interactions`", ("body", "POST", "/contracts/demo/interactions")),
    ("`GET /contracts/{contract_id}/calendar?", ("answer", "GET", "/contracts/demo/calendar", 200)),
    ("`POST /contracts/{contract_id}/preview`", ("body", "POST", "/contracts/demo/preview")),
    ("`POST /contracts/{contract_id}/preview`", ("answer", "POST", "/contracts/demo/preview", 200)),
    ("`POST /contracts/{contract_id}/simulations`", ("body", "POST", "/contracts/demo/simulations")),
    ("`POST /contracts/{contract_id}/simulations`", ("answer", "POST", "/contracts/demo/simulations", 200)),
    ("`POST /requests`", ("body", "POST", "/requests")),
    ("The request document", ("answer", "GET", "/requests/req_41254a818ea041b2a29235aaf47cb56d", 200)),
    ("`POST /tokens`", ("answer", "POST", "/tokens", 201)),
    ("`PUT /calendars/{country}/{year}`", ("body", "PUT", "/calendars/CN/2027")),
    ("`GET /calendars/{country}/{year}`", ("answer", "GET", "/calendars/CN/2027", 200)),
]


def api_examples():
    examples = json_examples(API_MD.read_text("utf-8"))
    assert [heading for heading, _ in examples] == [
        next(h for h, _ in examples if h.startswith(start)) for start, _ in API_EXAMPLES
    ] and len(examples) == len(API_EXAMPLES), "a JSON example of docs/api.md is new or gone: list it in API_EXAMPLES"
    return [(heading, example, what) for (heading, example), (_, what) in zip(examples, API_EXAMPLES, strict=True)]


def test_every_json_example_of_api_md_is_listed_and_matches_the_openapi_spec():
    problems = []
    for heading, example, (kind, method, path, *status) in api_examples():
        if kind == "body":
            problems += [f"{heading}: {p}" for p in SPEC.request_problems(method, path, example)]
        else:
            problems += [f"{heading}: {p}" for p in SPEC.problems(
                method, path, status[0], {"Content-Type": "application/json"}, json.dumps(example))]
    assert not problems


def examples_under(heading):
    return [example for title, example, _ in api_examples() if title.startswith(heading)]


def test_the_preview_and_calendar_examples_are_what_the_demo_contract_answers(admin, clock):
    _, agent, _ = contract_with_tokens(admin, DEMO_CONTRACT, "demo")
    body, answer = examples_under("`POST /contracts/{contract_id}/preview`")
    assert agent.post("/contracts/demo/preview", body) == (200, answer)
    [calendar] = examples_under("`GET /contracts/{contract_id}/calendar?")
    days = {day["date"]: day for day in agent.get("/contracts/demo/calendar?from=2026-09-01&to=2026-10-31")[1]["days"]}
    assert calendar["timezone"] == DEMO_CONTRACT["timezone"]
    assert [days[day["date"]] for day in calendar["days"]] == calendar["days"]


def test_the_simulation_example_is_the_answer_to_its_own_body_after_make_demo(admin, mailbox, clock):
    demo, seed = load_script("demo"), load_script("seed")
    _, agent, _ = contract_with_tokens(admin, DEMO_CONTRACT, seed.MAKE_DEMO_ID)
    demo.post_requests(ThroughTheTestClient(admin), {"contract_id": seed.MAKE_DEMO_ID, "agent": agent.token,
                                                     "admin": admin.token})
    body, answer = examples_under("`POST /contracts/{contract_id}/simulations`")
    status, replayed = agent.post(f"/contracts/{seed.MAKE_DEMO_ID}/simulations", body)
    assert status == 200 and (replayed["priorities"], replayed["month"]) == (body["priorities"], body["month"])
    ids = re.compile(r"req_[0-9a-f]{32}")  # new on every run
    shown, replayed = (ids.sub("req_…", json.dumps(doc, sort_keys=True)) for doc in (answer, replayed))
    assert replayed == shown


def test_the_request_and_calendar_year_examples_are_taken_as_shown(admin, mailbox, clock):
    _, agent, _ = contract_with_tokens(admin, DEMO_CONTRACT, "demo")
    [request_body] = examples_under("`POST /requests`")
    status, created = agent.post("/requests", request_body)
    assert status == 201 and created["sla"]["first_response"]["due_at"] == "2026-02-14T10:30:00+08:00"
    [schedule] = examples_under("`PUT /calendars/{country}/{year}`")
    [stored] = examples_under("`GET /calendars/{country}/{year}`")
    status, answer = admin.put("/calendars/CN/2027", schedule)
    assert status == 201 and admin.get("/calendars/CN/2027") == (200, answer)
    assert answer | {"updated_at": stored["updated_at"]} == stored  # `reference` is the source the PUT gave


def test_api_md_states_the_limits_the_code_enforces():
    from chalicelib import calendars, http
    from chalicelib.core import intake

    text = API_MD.read_text("utf-8")
    requests_table = section(text, "`POST /requests`")
    assert f"up to {intake.MAX_DESCRIPTION:,} characters" in requests_table
    assert f"{http.MAX_BODY:,} bytes" in requests_table and "\\uXXXX" in requests_table
    ics = section(text, "`GET /contracts/{contract_id}/calendar.ics")
    assert f"at most {calendars.MAX_ICS_DAYS} days" in ics and "?token=" in ics
    assert f"at most {calendars.MAX_DAYS} days" in section(text, "`GET /contracts/{contract_id}/calendar?")
    scheduled = section(text, "Scheduled functions")
    rows = re.findall(r"^\| `(\w+)` \|", scheduled, re.MULTILINE)
    assert len(rows) == len(set(rows)), "a function is described twice"


def test_a_description_of_20000_chinese_characters_fits_as_utf8_but_not_escaped(acme, mailbox, clock):
    from chalicelib.core import intake

    _, agent, _ = acme
    body = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "长描述",
            "requester": {"email": "zhang@customer.example"}, "description": "登" * intake.MAX_DESCRIPTION}
    assert agent.call("POST", "/requests", raw=json.dumps(body, ensure_ascii=False))[0] == 201
    escaped = agent.call("POST", "/requests", raw=json.dumps(body))
    assert escaped[0] == 413 and escaped[1]["Code"] == "RequestEntityTooLargeError"
    for characters, status in ((10_800, 201), (10_900, 413)):  # "from about 10,900", says docs/api.md
        body["description"] = "登" * characters
        assert agent.call("POST", "/requests", raw=json.dumps(body))[0] == status


def test_every_variable_the_local_run_reads_is_documented_and_the_readme_names_the_port():
    read = set()
    for script in ("run_local", "demo"):
        read |= set(re.findall(r"\bSLA_[A-Z_]+\b", (ROOT / "scripts" / f"{script}.py").read_text("utf-8")))
    settings = section((ROOT / "docs" / "local.md").read_text("utf-8"), "Settings")
    assert "SLA_PORT" in read and not [name for name in sorted(read) if f"`{name}`" not in settings]
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "SLA_PORT" in readme and "docs/local.md#settings" in readme
