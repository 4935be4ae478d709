"""index.corpus: scraped article files to clean articles, and bad files reported without stopping the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import index.corpus
from index.build import rebuild
from index.corpus import Article, parse_date, parse_file, scan_corpus
from index.store import Store

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
</head><body>
<h1>Zebra crossing opens</h1>
<p>The town&rsquo;s new zebra crossing opened &amp; drivers slowed down.</p>
<h2>Reactions</h2>
<p>Residents said the crossing was &quot;overdue&quot; &#8212; finally.</p>
<script>document.write("<p>written by script</p>")</script>
</body></html>
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


@pytest.mark.asyncio
async def test_bad_files_are_reported_and_skipped_and_the_rest_indexed(tmp_path, db_file, monkeypatch):
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

    async with Store(db_file) as store:
        report = await rebuild(store, corpus)
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

    async with Store(db_file) as store:
        titles = sorted(a.title for a, _ in await store.articles())
        assert titles == ["Caf\u00e9 news", "Zanzibar ferry resumes"]
        async with store.db.execute("SELECT text FROM passages") as cursor:
            stored = sorted(row[0] for row in await cursor.fetchall())
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
