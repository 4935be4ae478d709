"""index.corpus: scraped article files to clean articles, and bad files reported without stopping the rest."""

from __future__ import annotations

import codecs
import gzip
import json
import os
import random
import re
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

import index.corpus
from index.build import rebuild
from index.corpus import Article, parse_date, parse_file, scan_corpus

from tests.conftest import SHIPPED_CORPUS

SEEDS = {
    "000": "000_baf13ccadf848008.txt",
    "001": "001_b8dd3071ee1f5b21.txt",
    "002": "002_8b0c8cfba84b287d.txt",
    "003": "003_c877ea3053c63f58.txt",
    "004": "004_fd8deb390daa752a.txt",
}


@pytest.fixture(scope="module")
def seeds() -> dict[str, Article]:
    files, problems = scan_corpus(SHIPPED_CORPUS)
    assert problems == []
    by_name = {}
    for file in files:
        articles, trouble = parse_file(file)
        assert trouble == [], trouble
        assert len(articles) == 1
        by_name[file.relative[:3]] = articles[0]
    assert sorted(by_name) == sorted(SEEDS)
    return by_name


def texts(article: Article) -> list[str]:
    return [p.text for p in article.paragraphs]


def paragraph_starting(article: Article, start: str):
    found = [p for p in article.paragraphs if p.text.startswith(start)]
    assert len(found) == 1, (start, len(found))
    return found[0]


# -- the shipped seeds -------------------------------------------------------------------------------


def test_seed_paragraphs_are_clean(seeds):
    for name, article in seeds.items():
        assert article.paragraphs, name
        for text in texts(article):
            assert text == text.strip() and text, (name, text)
            assert "\n" not in text, (name, text)
        assert len(set(texts(article))) == len(article.paragraphs), name


def test_single_newline_separates_paragraphs_in_a_blank_line_file(seeds):
    """Seed 000 separates paragraphs by blank lines, except one pair split by a single newline."""
    article = seeds["000"]
    first = paragraph_starting(article, "In addition,\u00a0talks will additionally focus")
    second = paragraph_starting(article, "Furthermore, Egyptian sources")
    assert first.text.endswith("said the source.")
    assert "Furthermore" not in first.text
    assert texts(article).index(second.text) == texts(article).index(first.text) + 1


def test_single_newline_files_give_one_paragraph_a_line(seeds):
    raw = (SHIPPED_CORPUS / SEEDS["002"]).read_text(encoding="utf-8")
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    headings = {"Will Russia intervene militarily in Libya",
                "Speculations about the role of Egypt and some Gulf countries in Libya",
                "Creating a military balance"}
    assert texts(seeds["002"]) == [line for line in lines if line not in headings]


def test_blank_line_files_give_one_paragraph_a_block(seeds):
    raw = (SHIPPED_CORPUS / SEEDS["004"]).read_text(encoding="utf-8")
    blocks = [block.strip() for block in raw.split("\n\n") if block.strip()]
    assert texts(seeds["004"]) == blocks[1:]   # the first block is the headline


def test_section_headings_are_context_not_passages(seeds):
    article = seeds["002"]
    headings = ["Will Russia intervene militarily in Libya",
                "Speculations about the role of Egypt and some Gulf countries in Libya",
                "Creating a military balance"]
    for heading in headings:
        assert heading not in texts(article)
    assert paragraph_starting(article, "General Khalifa Haftar has arrived in Moscow").section is None
    assert paragraph_starting(article, "It is not clear yet what kind of support").section is None
    assert paragraph_starting(article, "According to some recent media reports, Russia").section == headings[0]
    assert paragraph_starting(article, "According to the Russian proposal").section == headings[0]
    assert paragraph_starting(article, "There is no doubt that Haftar has strengthened").section == headings[1]
    assert paragraph_starting(article, "With the assistance of the Egyptian Armed Forces").section == headings[1]
    assert paragraph_starting(article, "Though a year ago").section == headings[2]
    assert paragraph_starting(article, "However, some observers believe").section == headings[2]


def test_dateline_is_the_date_not_a_passage(seeds):
    article = seeds["003"]
    assert article.published == "2019-04-16"
    assert not any("16/04/2019" in text for text in texts(article))


def test_caption_printed_twice_is_kept_once(seeds):
    caption = "Egyptian president Abdel Fattah al-Sisi (R) meets Libyan strongman Khalifa Haftar (L)"
    raw = (SHIPPED_CORPUS / SEEDS["003"]).read_text(encoding="utf-8")
    assert raw.count(caption) == 2
    assert sum(caption in text for text in texts(seeds["003"])) == 1


def test_article_without_headline_gets_a_title_from_its_first_sentence(seeds):
    article = seeds["002"]
    first_line = (SHIPPED_CORPUS / SEEDS["002"]).read_text(encoding="utf-8").splitlines()[0].strip()
    assert article.paragraphs[0].text == first_line            # the first line is a passage, not a title
    assert article.title
    assert article.paragraphs[0].text.startswith(article.title.rstrip("\u2026").rstrip())
    assert len(article.title) <= 100


@pytest.mark.parametrize("name", ["000", "001", "003", "004"])
def test_headline_is_the_first_line(seeds, name):
    first_line = (SHIPPED_CORPUS / SEEDS[name]).read_text(encoding="utf-8").splitlines()[0].strip()
    assert seeds[name].title == first_line
    assert first_line not in texts(seeds[name])


@pytest.mark.parametrize(("line", "iso"), [
    ("Tuesday 16/04/2019", "2019-04-16"),
    ("16/04/2019", "2019-04-16"),
    ("2019-04-16", "2019-04-16"),
    ("April 16, 2019", "2019-04-16"),
    ("16 April 2019", "2019-04-16"),
    ("Tuesday, April 16, 2019", "2019-04-16"),
    ("Haftar met Sisi on 16/04/2019", None),
    ("31/02/2019", None),
])
def test_parse_date_reads_a_whole_line_date(line, iso):
    assert parse_date(line) == iso


# -- formats ----------------------------------------------------------------------------------------

MARKDOWN = """---
title: "Qwerty harbour reopens"
url: https://example.com/news/qwerty
outlet: Example Gazette
published: 2024-03-05
author: Jane Roe
---

The qwerty harbour reopened on Tuesday after a week of repairs, officials said. See [the notice](https://example.com/n) for details.

## Damage to the quay

Engineers found cracks in the north quay.

Another paragraph under the same heading.
"""

HTML = """<!doctype html><html><head><title>Site | Zebra crossing opens</title>
<meta property="og:title" content="Zebra crossing opens">
<meta property="og:url" content="https://example.org/zebra">
<meta property="og:site_name" content="Example Times">
<meta property="article:published_time" content="2023-07-01T09:30:00Z">
<style>p { color: red }</style>
<script>var p = "<p>script text</p>";</script>
</head><body><article>
<h1>Zebra crossing opens</h1>
<p>The town&rsquo;s new zebra crossing opened &amp; drivers slowed down.</p>
<h2>Reactions</h2>
<p>Residents said the crossing was &quot;overdue&quot; &#8212; finally.</p>
<script>document.write("<p>written by script</p>")</script>
</article></body></html>
"""


def parse_one(path: Path) -> tuple[list[Article], list]:
    files, problems = scan_corpus(path)
    assert problems == []
    assert len(files) == 1
    return parse_file(files[0])


def test_markdown_front_matter_and_headings(tmp_path):
    path = tmp_path / "harbour.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    (article,), problems = parse_one(path)
    assert problems == []
    assert (article.title, article.url, article.outlet, article.published, article.author) == (
        "Qwerty harbour reopens", "https://example.com/news/qwerty", "Example Gazette", "2024-03-05", "Jane Roe")
    assert [(p.text, p.section) for p in article.paragraphs] == [
        ("The qwerty harbour reopened on Tuesday after a week of repairs, officials said. See the notice for details.",
         None),
        ("Engineers found cracks in the north quay.", "Damage to the quay"),
        ("Another paragraph under the same heading.", "Damage to the quay"),
    ]


def test_html_metadata_paragraphs_sections_and_entities(tmp_path):
    path = tmp_path / "zebra.html"
    path.write_text(HTML, encoding="utf-8")
    (article,), problems = parse_one(path)
    assert problems == []
    assert (article.title, article.url, article.outlet, article.published) == (
        "Zebra crossing opens", "https://example.org/zebra", "Example Times", "2023-07-01")
    assert [(p.text, p.section) for p in article.paragraphs] == [
        ("The town\u2019s new zebra crossing opened & drivers slowed down.", None),
        ("Residents said the crossing was \"overdue\" \u2014 finally.", "Reactions"),
    ]
    assert not any("script" in p.text or "color" in p.text for p in article.paragraphs)


def test_jsonl_articles_and_a_malformed_line_reported_by_number(tmp_path):
    lines = [
        json.dumps({"id": "a1", "title": "First", "text": "Alpha paragraph one.\n\nAlpha paragraph two.",
                    "url": "https://example.net/a1", "outlet": "Wire", "published": "2022-01-02"}),
        '{"id": "a2", "title": "Broken", "text": "unterminated',
        json.dumps({"id": "a3", "title": "Third", "paragraphs": ["Gamma one.", "Gamma two."]}),
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles, problems = parse_one(path)
    assert [(a.source, a.title, texts(a)) for a in articles] == [
        ("feed.jsonl#a1", "First", ["Alpha paragraph one.", "Alpha paragraph two."]),
        ("feed.jsonl#a3", "Third", ["Gamma one.", "Gamma two."]),
    ]
    assert (articles[0].url, articles[0].outlet, articles[0].published) == ("https://example.net/a1", "Wire", "2022-01-02")
    assert len(problems) == 1
    assert problems[0].skipped
    assert "feed.jsonl line 2" in str(problems[0])
    assert "JSON" in problems[0].reason


# -- bad input --------------------------------------------------------------------------------------

GOOD = "Zanzibar ferry resumes\n\nThe zanzibar ferry resumed its crossings on Monday after repairs, the operator said.\n"


def test_bad_files_are_reported_and_skipped_and_the_rest_indexed(tmp_path, db_file, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(GOOD, encoding="utf-8")
    (corpus / "empty.txt").write_bytes(b"  \n\n")
    (corpus / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00\x00binary\x00data")
    (corpus / "huge.txt").write_text("Huge file\n\n" + "A long paragraph about quokkas. " * 200, encoding="utf-8")
    (corpus / "locked.txt").write_text("Locked\n\nA paragraph nobody can read.\n", encoding="utf-8")
    (corpus / "latin.txt").write_bytes("Caf\u00e9 news\n\nThe caf\u00e9 on the corner reopened.\n".encode("cp1252"))
    monkeypatch.setattr(index.corpus, "MAX_FILE_BYTES", 2000)
    read_bytes = Path.read_bytes

    def unreadable(path: Path) -> bytes:
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", unreadable)   # works as root too, where chmod 000 would not

    report = rebuild(db_file, corpus).report
    problems = {p.file: p for p in report.problems}
    assert set(problems) == {"empty.txt", "binary.txt", "huge.txt", "locked.txt", "latin.txt"}
    assert "empty" in problems["empty.txt"].reason
    assert "binary" in problems["binary.txt"].reason
    assert "too large" in problems["huge.txt"].reason
    assert "Permission denied" in problems["locked.txt"].reason
    assert "UTF-8" in problems["latin.txt"].reason
    assert all(p.skipped for name, p in problems.items() if name != "latin.txt")
    assert not problems["latin.txt"].skipped
    assert report.articles == 2
    summary = report.summary()
    for name in ("empty.txt", "binary.txt", "huge.txt", "locked.txt"):
        assert f"Skipped: {name}: " in summary
    assert "Warning: latin.txt: " in summary

    with sqlite3.connect(db_file) as conn:
        titles = sorted(title for title, in conn.execute("SELECT title FROM articles"))
        stored = sorted(text for text, in conn.execute("SELECT text FROM passages"))
    assert titles == ["Caf\u00e9 news", "Zanzibar ferry resumes"]
    assert stored == ["The caf\u00e9 on the corner reopened.",
                      "The zanzibar ferry resumed its crossings on Monday after repairs, the operator said."]


def test_cp1252_bytes_are_read_with_a_warning(tmp_path):
    path = tmp_path / "old.txt"
    path.write_bytes(b"Old scrape\n\nThe caf\xe9 served \x93coffee\x94 all night.\n")
    (article,), problems = parse_one(path)
    assert article.paragraphs[0].text == "The caf\u00e9 served \u201ccoffee\u201d all night."
    assert len(problems) == 1 and not problems[0].skipped
    assert str(problems[0]).startswith("old.txt: ") and "cp1252" in str(problems[0])


def test_hidden_files_and_other_suffixes_are_not_articles(tmp_path):
    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# B\n\nA paragraph.\n", encoding="utf-8")
    files, problems = scan_corpus(tmp_path)
    assert [f.relative for f in files] == ["a.txt", "sub/b.md"]
    assert problems == []


# -- encodings and binary files -----------------------------------------------------------------------

STORY = "Z\u00fcrich tram strike ends\n\nThe Z\u00fcrich tram drivers returned to work on Friday, the union said.\n"


BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}


@pytest.mark.parametrize("encoding", sorted(BOMS))
def test_utf16_and_utf32_files_with_a_bom_are_read(tmp_path, encoding):
    path = tmp_path / "wide.txt"
    path.write_bytes(BOMS[encoding] + STORY.encode(encoding))
    (article,), problems = parse_one(path)
    assert problems == []
    assert article.title == "Z\u00fcrich tram strike ends"
    assert texts(article) == ["The Z\u00fcrich tram drivers returned to work on Friday, the union said."]


def test_utf16_with_a_truncated_last_character_is_read_with_a_warning(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + STORY.encode("utf-16-le") + b"A")   # an odd byte out
    (article,), problems = parse_one(path)
    assert texts(article) == ["The Z\u00fcrich tram drivers returned to work on Friday, the union said."]
    assert [(p.file, p.skipped) for p in problems] == [("cut.txt", False)]
    assert problems[0].reason.startswith("not valid UTF-16 (byte ")


def _png(width: int, height: int, seed: int) -> bytes:
    """A real PNG file: signature, IHDR, one zlib-compressed IDAT of noisy RGB rows, IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


BINARIES = {
    "random bytes": random.Random(1).randbytes(4096),
    "png": _png(32, 32, seed=2),
    "gzip of text": gzip.compress((GOOD * 300).encode() + random.Random(3).randbytes(2000), mtime=0),
    "random after a UTF-16 BOM": codecs.BOM_UTF16_LE + random.Random(4).randbytes(4096),
    "small random file": random.Random(5).randbytes(300),
}


@pytest.mark.parametrize("kind", sorted(BINARIES))
def test_binary_file_without_nul_bytes_is_skipped_not_indexed(tmp_path, kind):
    path = tmp_path / "story.txt"
    path.write_bytes(BINARIES[kind].replace(b"\x00", b""))
    articles, problems = parse_one(path)
    assert articles == []
    assert len(problems) == 1 and problems[0].skipped and problems[0].file == "story.txt"
    assert re.fullmatch(r"binary file, not text \(\d+% control or undecodable characters\)", problems[0].reason)


def test_stray_control_characters_in_text_become_spaces(tmp_path):
    path = tmp_path / "dos.txt"
    path.write_bytes(b"Ferry news\r\n\r\nThe ferry\x0bresumed its crossings on Monday.\r\n\x1a")   # Word line break, DOS EOF
    (article,), problems = parse_one(path)
    assert problems == []
    assert texts(article) == ["The ferry resumed its crossings on Monday."]


def test_cp1252_with_an_unassigned_byte_keeps_its_curly_quotes(tmp_path):
    path = tmp_path / "old.txt"
    path.write_bytes(b"Old scrape\n\nThe caf\xe9 served \x93coffee\x94 all night.\n\x81\n")   # 0x81: no cp1252 character
    (article,), problems = parse_one(path)
    assert texts(article) == ["The caf\u00e9 served \u201ccoffee\u201d all night."]
    assert [str(p) for p in problems] == ["old.txt: not UTF-8 (byte 19); read as cp1252 (read anyway)"]


def test_html_in_the_encoding_its_meta_charset_names(tmp_path):
    cyrillic = tmp_path / "moscow.html"
    cyrillic.write_bytes('<html><head><meta charset="windows-1251"></head><body>'
                         '<h1>\u041d\u043e\u0432\u043e\u0441\u0442\u0438</h1><p>\u0414\u043e\u0436\u0434\u044c \u0432 '
                         '\u041c\u043e\u0441\u043a\u0432\u0435.</p></body></html>'.encode("cp1251"))
    (article,), problems = parse_one(cyrillic)
    assert problems == []
    assert (article.title, texts(article)) == ("\u041d\u043e\u0432\u043e\u0441\u0442\u0438",
                                               ["\u0414\u043e\u0436\u0434\u044c \u0432 \u041c\u043e\u0441\u043a\u0432\u0435."])
    # A scraper that re-encoded the page as UTF-8 but kept its old label: UTF-8 wins, no mojibake.
    relabelled = tmp_path / "cafe.html"
    relabelled.write_bytes('<meta charset="iso-8859-1"><p>The caf\u00e9 reopened.</p>'.encode("utf-8"))
    (article,), problems = parse_one(relabelled)
    assert problems == [] and texts(article) == ["The caf\u00e9 reopened."]
    # A label naming a codec that is no text encoding is no label at all.
    odd = tmp_path / "odd.html"
    odd.write_bytes(b'<meta charset="base64"><p>The caf\xe9 reopened.</p>')
    (article,), problems = parse_one(odd)
    assert texts(article) == ["The caf\u00e9 reopened."] and "cp1252" in problems[0].reason


# -- markdown front matter and marks ----------------------------------------------------------------


def test_front_matter_line_that_is_not_key_value_is_a_warning_and_never_a_passage(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("""---
Title: 'Harbour "reopens" at last'
URL: "https://example.com/h"
this line is broken
Tags: [harbour, repairs]
author:
  - Jane Roe
  - John Doe
outlet: Example Gazette # print edition
# a comment
---

The harbour reopened on Tuesday.
""", encoding="utf-8")
    (article,), problems = parse_one(path)
    assert [str(p) for p in problems] == [
        "notes.md: front matter line 4 is not \"key: value\" ('this line is broken') (read anyway)"]
    assert (article.title, article.url, article.author, article.outlet) == (
        'Harbour "reopens" at last', "https://example.com/h", "Jane Roe, John Doe", "Example Gazette")
    assert texts(article) == ["The harbour reopened on Tuesday."]


def test_unterminated_front_matter_skips_the_file(tmp_path):
    path = tmp_path / "open.md"
    path.write_text("---\ntitle: Harbour reopens\nurl: https://example.com/h\n\nThe harbour reopened on Tuesday.\n",
                    encoding="utf-8")
    articles, problems = parse_one(path)
    assert articles == []
    assert [(p.file, p.skipped) for p in problems] == [("open.md", True)]
    assert problems[0].reason.startswith("front matter opened on line 1 is never closed")


def test_empty_front_matter_leaves_the_heading_as_title(tmp_path):
    path = tmp_path / "bare.md"
    path.write_text("---\ntitle:\n---\n# Harbour reopens\n\nThe harbour reopened on Tuesday.\n", encoding="utf-8")
    (article,), problems = parse_one(path)
    assert problems == []
    assert (article.title, texts(article)) == ("Harbour reopens", ["The harbour reopened on Tuesday."])


def test_markdown_breaks_comments_bullets_and_setext_headings(tmp_path):
    path = tmp_path / "quay.md"
    path.write_text("""Quay repairs
============

**Officials** said the *north* quay was repaired.

#MeToo trended in the harbour town on Monday.

* * *

- First bullet about the quay.
> A quoted remark from the harbour master.
<!-- more -->

Section two
-----------
Final paragraph under section two.

---
""", encoding="utf-8")
    (article,), problems = parse_one(path)
    assert problems == []
    assert article.title == "Quay repairs"
    assert [(p.text, p.section) for p in article.paragraphs] == [
        ("Officials said the north quay was repaired.", None),
        ("#MeToo trended in the harbour town on Monday.", None),
        ("First bullet about the quay. A quoted remark from the harbour master.", None),
        ("Final paragraph under section two.", "Section two"),
    ]


# -- jsonl ------------------------------------------------------------------------------------------


def test_jsonl_line_separator_in_a_string_and_metadata_that_is_not_text(tmp_path):
    lines = [
        json.dumps({"id": "a", "title": "Tram", "text": "The tram\u2028resumed on Friday."}, ensure_ascii=False),
        json.dumps({"id": "b", "title": {"en": "Bus"}, "url": {"href": "https://example.net/b"}, "published": 2022,
                    "paragraphs": ["The bus resumed on Saturday."]}),
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles, problems = parse_one(path)
    assert problems == []
    assert [(a.source, a.title, a.url, texts(a)) for a in articles] == [
        ("feed.jsonl#a", "Tram", None, ["The tram\u2028resumed on Friday."]),
        ("feed.jsonl#b", "The bus resumed on Saturday", None, ["The bus resumed on Saturday."]),
    ]
    assert articles[1].published == "2022"



def test_jsonl_text_is_paragraphs_a_leading_dateline_is_dropped_and_no_heading_is_guessed(tmp_path):
    """Crawled news: a dateline or byline guessed as a heading became context for every paragraph."""
    text = ("New York CNN Business —\n\nSpirit and Frontier announced a merger. It creates a big airline.\n\n"
            "Associated Press\n\nThe combined carrier would fly to 145 destinations.")
    path = tmp_path / "crawl.jsonl"
    path.write_text(json.dumps({"id": "m", "text": text}) + "\n", encoding="utf-8")
    (article,), problems = parse_one(path)
    assert problems == []
    assert texts(article) == ["Spirit and Frontier announced a merger. It creates a big airline.", "Associated Press",
                              "The combined carrier would fly to 145 destinations."]
    assert {p.section for p in article.paragraphs} == {None}
    assert article.title == "Spirit and Frontier announced a merger"

# -- symbolic links and folders ---------------------------------------------------------------------


def test_symbolic_links_followed_and_broken_ones_and_loops_reported(tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "story.txt").write_text(GOOD, encoding="utf-8")
    (outside / "deep" / "more.txt").write_text(GOOD, encoding="utf-8")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text(GOOD, encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text(GOOD, encoding="utf-8")
    (corpus / "linked.txt").symlink_to(outside / "story.txt")     # a file outside the corpus
    (corpus / "ext").symlink_to(outside, target_is_directory=True)  # a folder outside the corpus
    (corpus / "again").symlink_to(corpus / "sub", target_is_directory=True)
    (corpus / "sub" / "up").symlink_to("..", target_is_directory=True)
    (corpus / "gone.txt").symlink_to(corpus / "missing.txt")
    (corpus / "self.md").symlink_to("self.md")
    (corpus / "photo.jpg").symlink_to("missing.jpg")     # not an article, even if it were there
    (corpus / ".hidden").symlink_to(corpus, target_is_directory=True)

    files, problems = scan_corpus(corpus)
    assert [f.relative for f in files] == ["a.txt", "ext/deep/more.txt", "ext/story.txt", "linked.txt", "sub/b.txt"]
    assert all(f.read() == GOOD.encode() for f in files)
    assert sorted(str(p) for p in problems) == [
        "again: the same folder as sub, read there",
        f"gone.txt: broken symbolic link to {corpus / 'missing.txt'}",
        "self.md: symbolic link loop",
        "sub/up: symbolic link loop (leads back to the corpus folder)",
    ]


def test_scan_order_is_by_path_parts_and_stable(tmp_path):
    for name in ("b.txt", "a-c.txt", "a/b.txt", "a/a.md", "A.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(GOOD, encoding="utf-8")
    first, _ = scan_corpus(tmp_path)
    second, _ = scan_corpus(tmp_path)
    assert [f.relative for f in first] == [f.relative for f in second] == ["A.txt", "a/a.md", "a/b.txt", "a-c.txt", "b.txt"]


def test_unreadable_folder_and_special_files_are_reported(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.txt").write_text(GOOD, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.txt")    # reading it would wait for a writer for ever
    scandir = os.scandir

    def refuse(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)     # works as root too, where chmod 000 would not
    files, problems = scan_corpus(tmp_path)
    assert [f.relative for f in files] == ["a.txt"]
    assert [str(p) for p in problems] == ["locked: folder cannot be read (Permission denied)",
                                          "pipe.txt: not a regular file"]
