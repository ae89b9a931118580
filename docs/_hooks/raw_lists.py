"""MkDocs hook: a warning (a failure under `mkdocs build --strict`, as CI builds) for each list item that rendered
as text. Python-Markdown starts a list only after a blank line and nests one only under four spaces, so a bullet
written right under a paragraph, or under a table inside another item, comes out as a line starting with "- "."""

from __future__ import annotations

import logging
import re

log = logging.getLogger("mkdocs.hooks.raw_lists")
#: A line of rendered text that is a list marker Markdown did not take: "- " then a letter, a tag or a quote (not a
#: digit: a wrapped line may start with a minus).
RAW = re.compile(r"^\s*- (?=[A-Za-z<\"'(`*])")
PRE = re.compile(r"<pre\b.*?</pre>", re.S)


def raw_items(html: str) -> list[str]:
    """The lines of `html` (outside <pre> blocks) that start with a list marker Markdown left as text."""
    return [line.strip() for line in PRE.sub("", html).splitlines() if RAW.match(line)]


def on_page_content(html, page, config, files):
    for line in raw_items(html):
        log.warning("%s: a list item rendered as text (put a blank line before it): %s", page.file.src_uri,
                    re.sub(r"<[^>]+>", "", line)[:80])
    return html
