"""One coherent book: docs/index.md links every chapter, and every relative
link of README.md, docs/ and examples/ names a file that exists and, with a
`#anchor`, one of its headings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").rglob("*.md")])
CHAPTERS = ["contracts", "versioning", "runtime", "components", "telemetry", "testing", "performance", "operations"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)


def links(page: Path) -> list[str]:
    """Relative link targets, outside code blocks and inline code."""
    text = re.sub(r"`[^`\n]*`", "", FENCED.sub("", page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z]+:", t)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(page: Path) -> set[str]:
    return {anchor(h) for h in HEADING.findall(FENCED.sub("", page.read_text()))}


def test_the_index_links_every_chapter() -> None:
    targets = set(links(ROOT / "docs" / "index.md"))
    assert [c for c in CHAPTERS if f"{c}.md" not in targets] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment}")
    assert broken == []


def test_a_broken_link_and_a_broken_anchor_are_seen(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# The Bus, and more\n[a](p.md#the-bus-and-more) [b](q.md) `[c](r.md)`\n```\n[d](s.md)\n```\n")
    assert links(page) == ["p.md#the-bus-and-more", "q.md"]
    assert anchors(page) == {"the-bus-and-more"}
