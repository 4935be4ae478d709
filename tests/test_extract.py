"""Article extraction (trafilatura) for pages and .html files, YAML front matter, and URLs checked on reading."""

from __future__ import annotations

import json

from index.corpus import parse_bytes
from index.extract import extract_html
from tests.newsserver import BRIDGE, GOOD, HARBOUR, news_page

BOILERPLATE = ("cookie", "Subscribe", "Share on", "Related stories", "Storm batters", "Great news for the town",
               "All rights reserved", "Privacy policy", "Home", "Already a subscriber", "By Jane Roe")


def test_a_news_page_gives_its_paragraphs_and_metadata_and_no_boilerplate():
    page = extract_html(news_page(base="https://gazette.example", **HARBOUR))
    assert (page.title, page.outlet, page.author, page.published, page.url) == (
        "Harbour reopens after storm repairs", "The Qwerty Gazette", "Jane Roe", "2024-03-05",
        "https://gazette.example/news/harbour")
    assert page.blocks == HARBOUR["paragraphs"][:2] + ["Fishermen relieved"] + HARBOUR["paragraphs"][2:]
    assert page.headings == {2}


def test_no_boilerplate_is_a_paragraph_or_a_heading_of_any_test_page():
    for spec in GOOD:
        (article,), problems = parse_bytes(news_page(base="https://site.example", **spec).encode(), "page.html")
        assert problems == []
        assert [p.text for p in article.paragraphs] == spec["paragraphs"]
        assert {p.section for p in article.paragraphs} <= {None, spec["heading"]}
        for p in article.paragraphs:
            assert not any(junk in p.text or junk in (p.section or "") for junk in BOILERPLATE), p


def test_html_file_in_the_corpus_goes_through_the_extractor():
    (article,), problems = parse_bytes(news_page(base="https://courier.example", **BRIDGE).encode(), "bridge.html")
    assert (article.title, article.outlet, article.url, article.published) == (
        "Zanzibar bridge vote delayed again", "Coastal Courier", "https://courier.example/news/bridge", "2024-04-11")
    assert [(p.text[:20], p.section) for p in article.paragraphs] == [
        ("The council postpone", None), ("Supporters say the b", None),
        ("Opponents on the cou", "Council divided"), ("A final decision is ", "Council divided")]


def test_yaml_front_matter_dates_lists_and_quoting():
    text = """---
title: "Harbour: the reopening"
published: 2024-03-05
author: [Jane Roe, John Doe]
url: https://example.com/h
tags:
  - harbour
---
The harbour reopened on Tuesday.
"""
    (article,), problems = parse_bytes(text.encode(), "h.md")
    assert problems == []
    assert (article.title, article.published, article.author, article.url) == (
        "Harbour: the reopening", "2024-03-05", "Jane Roe, John Doe", "https://example.com/h")


def test_broken_yaml_is_reported_with_its_line_and_the_rest_kept():
    text = '---\ntitle: Harbour reopens\nauthor: "Jane Roe\noutlet: Gazette\n---\nThe harbour reopened on Tuesday.\n'
    (article,), problems = parse_bytes(text.encode(), "h.md")
    assert [str(p) for p in problems] == [
        "h.md: front matter line 3 is not valid YAML (found unexpected end of stream) (read anyway)"]
    assert (article.title, article.outlet, article.author) == ("Harbour reopens", "Gazette", None)
    assert [p.text for p in article.paragraphs] == ["The harbour reopened on Tuesday."]


def test_urls_that_are_not_safe_links_are_left_out_with_a_warning():
    records = [{"id": "a", "title": "A", "text": "Alpha text here.", "url": "javascript:alert(1)"},
               {"id": "b", "title": "B", "text": "Bravo text here.", "url": "https://x.example/a)](https://evil.example"},
               {"id": "c", "title": "C", "text": "Charlie text here.", "url": "https://x.example/ok a"}]
    articles, problems = parse_bytes("\n".join(map(json.dumps, records)).encode(), "w.jsonl")
    assert [a.url for a in articles] == [None, "https://x.example/a%29%5D%28https://evil.example", None]
    assert [str(p) for p in problems] == [
        "w.jsonl#a: url 'javascript:alert(1)' is not an http(s) link; left out (read anyway)",
        "w.jsonl#c: url 'https://x.example/ok a' is not an http(s) link; left out (read anyway)"]
