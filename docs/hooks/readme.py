"""MkDocs hook: the README is the one source of the user guide; pages take its sections instead of copies.

In a page, a line `<!-- readme: HEADING -->` becomes the body of the README section with that heading (up to the
next heading of the same or a higher level). A heading that is not there fails the build, so renaming a README
section cannot leave a page silently empty. Links inside the section are rewritten for the site: an anchor of the
README (`#offline`) and a path in the repository (`deploy/README.md`) do not exist there, so their text is kept
(the path as code) and the link dropped; web links stay.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!--\s*readme:\s*(.+?)\s*-->\s*$", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def readme_section(text: str, title: str) -> str:
    lines = text.splitlines()
    start: int | None = None
    level = 0
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced  # a '# comment' inside a shell block is no heading
            continue
        found = None if fenced else HEADING.match(line)
        if found is None:
            continue
        if start is None and found.group(2) == title:
            start, level = i + 1, len(found.group(1))
        elif start is not None and len(found.group(1)) <= level:
            return "\n".join(lines[start:i]).strip("\n")
    if start is None:
        raise PluginError(f"README.md has no section headed '{title}' (docs/hooks/readme.py)")
    return "\n".join(lines[start:]).strip("\n")


def site_links(markdown: str) -> str:
    def one(m: re.Match[str]) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+://", target):
            return m.group(0)
        if target.startswith("#"):
            return text
        return text if text.strip("`") == target else f"{text} (`{target}`)"

    return LINK.sub(one, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- readme:" not in markdown:
        return markdown
    readme = (Path(config["config_file_path"]).parent / "README.md").read_text(encoding="utf-8")
    return MARKER.sub(lambda m: site_links(readme_section(readme, m.group(1))), markdown)
