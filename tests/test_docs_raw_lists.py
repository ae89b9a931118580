"""The docs build's check for list items that rendered as text (docs/_hooks/raw_lists.py; CI's strict build fails
on its warnings): it flags a "- " line of rendered text, and not real list items, dashes inside a sentence or code."""

from __future__ import annotations

import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("raw_lists", ROOT / "docs" / "_hooks" / "raw_lists.py")
raw_lists = importlib.util.module_from_spec(spec)
spec.loader.exec_module(raw_lists)


def test_a_bullet_left_as_text_is_flagged():
    html = ("<p>the paragraph before it\n"
            "- <strong>Input delays</strong> (--delays K): one line\n"
            "  - a nested one, <code>x</code>\n"
            "more text</p>")
    assert raw_lists.raw_items(html) == ["- <strong>Input delays</strong> (--delays K): one line",
                                         "- a nested one, <code>x</code>"]


def test_real_items_dashes_in_text_and_code_blocks_are_not():
    html = ("<ul>\n<li><strong>Input delays</strong>: one line</li>\n</ul>\n"
            "<p>a range 0 - 50 ms and a minus\n- 3 at the start of a line</p>\n"
            "<pre><code>- listed in a code block\n  - and nested\n</code></pre>")
    assert raw_lists.raw_items(html) == []
