"""The README, the changelog and docs/ point at files (and headings) that exist, and at
make targets the Makefile has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and [text](target "title"); images too. Reference-style links are not used.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")
# `make lab`, `make bench`: a target right after the word make, in code only (prose says
# "make sure").
MAKE = re.compile(r"(?<![\w.-])make\s+([a-z][\w-]*)")
TARGET = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)", re.M)


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def links(text: str) -> list[str]:
    """Link targets outside code, where brackets and parentheses are literal."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    return LINK.findall(prose)


def code(text: str) -> str:
    return "\n".join(FENCE.findall(text) + INLINE_CODE.findall(text))


def anchors(text: str) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation dropped, - for space."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", text), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def make_targets() -> set[str]:
    return set(TARGET.findall((ROOT / "Makefile").read_text()))


def test_the_docs_exist() -> None:
    names = {page_id(page) for page in PAGES}
    assert {"README.md", "docs/operator.md", "docs/design.md"} <= names
    assert {"docs/security.md", "docs/benchmarks.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_point_at_files(page: Path) -> None:
    text = page.read_text()
    broken = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        if not linked.exists() or (anchor and anchor not in anchors(linked.read_text())):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_make_targets_exist(page: Path) -> None:
    named = set(MAKE.findall(code(page.read_text())))
    assert named - make_targets() == set()


def test_the_checks_see_links_and_targets() -> None:
    text = "[a](docs/x.md) `[b](not/a/link)` [c](https://example.com) `make lab` make sure"
    assert links(text) == ["docs/x.md", "https://example.com"]
    assert MAKE.findall(code(text)) == ["lab"]
    assert anchors("# The P-App contract\n```\n# not a heading\n```\n## Media: `x`") == {
        "the-p-app-contract",
        "media-x",
    }
    assert {"lab", "test", "unit", "help"} <= make_targets()
