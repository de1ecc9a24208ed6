"""The README and the guide in ``docs/``: a short front page that links every page, and no
link that leads nowhere (a file that is not there, an anchor no heading makes)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> set[str]:
    found, fence = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"^#{1,6} (.*)$", line)):
            found.add(anchor(match.group(1)))
    return found


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


def test_the_readme_is_a_front_page_that_links_every_guide_page():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    linked = {link.split("#")[0] for link in links(readme)}
    for page in PAGES:
        if page.name != "README.md":
            assert f"docs/{page.name}" in linked, f"the README does not link {page.name}"


def test_every_link_in_the_readme_and_the_guide_leads_somewhere():
    for path in [ROOT / "README.md", *PAGES, *sorted((ROOT / "docs" / "adr").glob("*.md"))]:
        for link in links(path):
            target, _, fragment = link.partition("#")
            file = (path.parent / target).resolve() if target else path
            assert file.exists(), f"{path.name}: {link} leads to no file"
            if fragment and file.suffix == ".md":
                assert fragment in headings(file), f"{path.name}: {link} names no heading"
