"""The manual: README.md is the front door, docs/ the manual built by mkdocs (mkdocs.yml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 250

# [text](target) outside code; images too
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links(text: str) -> list[str]:
    return LINK.findall(FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """The heading ids mkdocs gives a page (toc's default slugify)."""
    text = FENCE.sub("", page.read_text())
    return {slugify(m.group(1).strip(), "-") for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def nav_pages(nav) -> list[str]:
    """Every page file in mkdocs.yml's nav, however nested."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return [p for item in nav for p in nav_pages(item)]


def test_mkdocs_builds_strict(tmp_path):
    """A broken link or anchor, a page left out of the nav or a bad config fails the build."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it under {README_MAX_LINES} and move the "
        "details to a page in docs/")


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert pages, "docs/ has no pages"
    assert sorted(set(nav)) == pages, f"nav {sorted(nav)} against pages {pages}"
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"


def test_readme_links_to_docs_exist():
    readme = (ROOT / "README.md").read_text()
    to_docs = [t for t in links(readme) if t.startswith("docs/")]
    assert to_docs, "README.md links to no page of docs/"
    for target in to_docs:
        path, _, anchor = target.partition("#")
        page = ROOT / path
        assert page.is_file(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(page), f"README.md links to {target}: no such heading"


def test_readme_links_every_page():
    """"Where to go next" names every page of the manual."""
    linked = {t.partition("#")[0] for t in links((ROOT / "README.md").read_text())}
    for page in sorted(DOCS.rglob("*.md")):
        if page.name == "index.md":
            continue
        assert f"docs/{page.relative_to(DOCS)}" in linked, f"README.md does not link {page}"


def test_relative_links_outside_docs_exist():
    """README.md and benchmarks/README.md link other files of the repository by path."""
    for source in (ROOT / "README.md", ROOT / "benchmarks" / "README.md"):
        for target in links(source.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (source.parent / target.partition("#")[0]).resolve()
            assert path.exists(), f"{source.relative_to(ROOT)} links to {target}: not found"

