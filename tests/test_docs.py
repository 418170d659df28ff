"""The documentation lives in the repository and holds together: every relative link resolves, the
README stays short, and nothing points at a file outside the repository."""
import re
import subprocess
from pathlib import Path

import pytest

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
