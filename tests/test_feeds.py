"""Feeds end to end through the CLI, against a news site on loopback: add, fetch, ask, fetch again, add one."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from index.cli import main
from tests.newsserver import BRIDGE, GOOD, HARBOUR, LATIN1, SCHOOL, NewsServer

ENV = {"NEWSDESK_ALLOW_PRIVATE_URLS": "1", "NEWSDESK_ALLOWED_PORTS": "any", "NEWSDESK_FETCH_TIMEOUT": "0.5",
       "NEWSDESK_FETCH_HOST_DELAY": "0", "NEWSDESK_FETCH_MAX_BYTES": "1000000", "NEWSDESK_FETCH_MAX_ITEMS": "12"}
BOILERPLATE = ("cookie", "Subscribe", "subscriber", "Share on", "Related stories", "Storm batters",
               "Great news for the town", "All rights reserved", "Privacy policy", "Accept all")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """The site, a corpus with four feeds added and fetched once; the first fetch's output."""
    folder = tmp_path_factory.mktemp("desk")
    corpus, db = folder / "articles", folder / "n.db"
    with pytest.MonkeyPatch.context() as mp, NewsServer() as site:
        for name, value in ENV.items():
            mp.setenv(name, value)
        site.slow_seconds = 1.5
        storage = ["--corpus", str(corpus), "--db", str(db)]
        for feed in ("/rss2.xml", "/rss1.rdf", "/atom.xml", "/many.xml", "/flaky.xml"):
            assert main(["feeds", "add", site.base + feed, *storage]) == 0
        first = len(site.requests)
        yield site, corpus, storage, first


@pytest.fixture(scope="module")
def fetched(desk):
    site, corpus, storage, _ = desk
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["fetch", *storage]) == 0
    return out.getvalue()


def test_feeds_add_checks_the_feed_and_refuses_a_malformed_one(desk, capsys):
    site, corpus, storage, _ = desk
    code, out, err = run(capsys, "feeds", "add", site.base + "/malformed.xml", *storage)
    assert (code, out) == (1, "")
    assert err == f"Error: Not added: {site.base}/malformed.xml: not a readable feed (<unknown>:2:49: unclosed token)\n"
    code, out, err = run(capsys, "feeds", "add", site.base + "/atom.xml", *storage)
    assert code == 1 and "already on the list" in err


def test_fetch_adds_every_good_page_and_accounts_for_every_bad_one(desk, fetched):
    site, corpus, storage, _ = desk
    base = site.base
    assert f"  {base}/rss2.xml: 9 items, 2 added, 7 skipped" in fetched
    assert f"  {base}/rss1.rdf: 1 items, 1 added, 0 skipped" in fetched
    assert f"  {base}/atom.xml: 2 items, 1 added, 1 skipped" in fetched
    assert f"  {base}/many.xml: 500 items, 12 added, 0 skipped" in fetched
    assert f"  {base}/flaky.xml: failed: not a readable feed (<unknown>:2:49: unclosed token)" in fetched
    skipped = [line for line in fetched.splitlines() if line.startswith("  - ")]
    assert skipped == [
        f"  - {base}/missing: HTTP 404 Not Found",
        f"  - {base}/broken: HTTP 500 Internal Server Error (will try again: attempt 1 of 3)",
        f"  - {base}/slow: timed out after 0.5 s (will try again: attempt 1 of 3)",
        f"  - {base}/huge: too large (more than 1.0 MiB; stopped reading)",
        f"  - {base}/loop: redirect loop ({base}/loop2 -> {base}/loop)",
        f"  - {base}/report.pdf: not a web page (content type application/pdf)",
        f"  - {base}/news/harbour?utm_source=rss: repeats {base}/news/harbour (same canonical URL)",
        f"  - {base}/mirror/bridge: same text as coastal-courier/2024-04-11-zanzibar-bridge-vote-delayed-again.md",
        f"  - {base}/flaky.xml: feed not a readable feed (<unknown>:2:49: unclosed token)",
    ]
    # The 500-item feed: bounded to NEWSDESK_FETCH_MAX_ITEMS new articles a fetch, the rest said to wait.
    assert f"Left for the next fetch: {base}/many.xml: 488 new items (at most 12 per feed per fetch)" in fetched
    assert "Added 16 articles:" in fetched and "Articles: 16 added" in fetched
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.md"))
    assert files[:4] == ["coastal-courier/2024-04-11-zanzibar-bridge-vote-delayed-again.md",
                         "le-journal-du-quai/2024-06-02-cafe-owners-protest-new-kiosk-rules.md",
                         "many-wire/2024-01-01-story-number-alpha-alpha-alpha.md",
                         "many-wire/2024-01-01-story-number-alpha-alpha-bravo.md"]
    assert files[-2:] == ["the-qwerty-gazette/2024-03-05-harbour-reopens-after-storm-repairs.md",
                          "valley-post/2024-05-20-village-school-gets-solar-roof.md"]


def test_each_article_file_has_its_front_matter(desk, fetched):
    site, corpus, storage, _ = desk
    text = (corpus / "le-journal-du-quai/2024-06-02-cafe-owners-protest-new-kiosk-rules.md").read_text("utf-8")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert set(meta) == {"title", "url", "outlet", "published", "author", "fetched_at"}
    assert (meta["title"], meta["url"], meta["outlet"], meta["published"], meta["author"]) == (
        LATIN1["title"], f"{site.base}/news/cafe", LATIN1["outlet"], "2024-06-02", LATIN1["author"])


@pytest.mark.parametrize("spec, question", [(HARBOUR, "quay wall cracks loading cranes"),
                                            (BRIDGE, "zanzibar footbridge vote postponed"),
                                            (SCHOOL, "solar roof village school"),
                                            (LATIN1, "kiosk rules terraces takings")], ids=lambda v: v if isinstance(v, str) else v["slug"])
def test_ask_quotes_a_body_paragraph_with_title_outlet_date_and_url(desk, fetched, capsys, spec, question):
    site, corpus, storage, _ = desk
    code, out, err = run(capsys, "ask", question, "-k", "1", "--json", *storage)
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert result["text"] in spec["paragraphs"]
    document = result["document"]
    assert (document["title"], document["outlet"], document["published"], document["url"]) == (
        spec["title"], spec["outlet"], spec["date"], f"{site.base}/news/{spec['slug']}")
    code, out, err = run(capsys, "ask", question, "-k", "1", *storage)
    assert f"<{site.base}/news/{spec['slug']}>" in out and spec["outlet"] in out


def test_no_boilerplate_is_a_passage(desk, fetched):
    site, corpus, storage, _ = desk
    db = storage[storage.index("--db") + 1]
    with sqlite3.connect(db) as conn:
        texts = [row[0] for row in conn.execute("SELECT text FROM passages")]
        sections = [row[0] for row in conn.execute("SELECT DISTINCT section FROM occurrences") if row[0]]
    assert len(texts) == sum(len(spec["paragraphs"]) for spec in GOOD) + 12 * 2
    assert sorted(sections) == ["Council divided", "Fishermen relieved"]
    for text in texts + sections:
        assert not any(junk in text for junk in BOILERPLATE), text


def test_a_second_fetch_adds_nothing_and_asks_conditionally(desk, fetched, capsys):
    site, corpus, storage, _ = desk
    before = len(site.requests)
    code, out, err = run(capsys, "fetch", *storage)
    assert code == 0
    assert f"  {site.base}/rss1.rdf: not modified (304)" in out
    assert f"  {site.base}/atom.xml: not modified (304)" in out
    again = {r.path: r for r in site.requests[before:]}
    for feed in ("/rss1.rdf", "/atom.xml"):
        assert again[feed].headers.get("If-None-Match") and again[feed].headers.get("If-Modified-Since")
        assert again[feed].status == 304
    # Pages already added are not fetched again; only the ones that failed for a passing reason are.
    assert "/news/harbour" not in again and "/news/bridge" not in again and "/missing" not in again
    assert "/broken" in again and "/slow" in again
    assert "(will try again: attempt 2 of 3)" in out
    assert "repeats" not in out and "/missing" not in out       # reported at the first fetch, not again
    # The long feed goes on where it stopped: the next twelve stories, none of the first twelve again.
    assert "Added 12 articles:" in out and "alpha-alpha-alpha" not in out
    assert f"{site.base}/many.xml: 476 new items" in out


def test_feeds_list_and_remove(desk, fetched, capsys):
    site, corpus, storage, _ = desk
    code, out, err = run(capsys, "feeds", "list", *storage)
    assert code == 0 and out.count("\n") == 5
    assert f"{site.base}/atom.xml  Coastal Courier  (last polled " in out
    assert run(capsys, "feeds", "remove", site.base + "/flaky.xml", *storage)[:2] == (
        0, f"Removed feed {site.base}/flaky.xml; its articles stay in the corpus.\n")
    code, out, err = run(capsys, "feeds", "remove", site.base + "/flaky.xml", *storage)
    assert code == 1 and err.startswith(f"Error: No feed {site.base}/flaky.xml on the list.")


def test_add_a_url_previews_it_and_it_answers(tmp_path, capsys, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    storage = ["--corpus", str(tmp_path / "c"), "--db", str(tmp_path / "n.db")]
    with NewsServer() as site:
        code, out, err = run(capsys, "add", site.base + "/news/school", *storage)
        assert code == 0, err
        assert out.splitlines()[:5] == [
            f"Added: {SCHOOL['title']}", f"{SCHOOL['outlet']} · 2024-05-20 · 3 paragraphs", f"{site.base}/news/school",
            f"> {SCHOOL['paragraphs'][0]}", "Saved as valley-post/2024-05-20-village-school-gets-solar-roof.md"]
        assert "Articles: 1 added" in out
        code, out, err = run(capsys, "add", site.base + "/news/school?utm_source=x", *storage)
        assert (code, err) == (1, f"Error: Not added: {site.base}/news/school?utm_source=x: already in the corpus as "
                                  "valley-post/2024-05-20-village-school-gets-solar-roof.md.\n")
        assert not site.requests[-1].path.endswith("utm_source=x")     # known by its URL: not fetched again
    code, out, err = run(capsys, "ask", "solar roof electricity", "-k", "1", "--json", *storage)
    assert json.loads(out)["results"][0]["text"] == SCHOOL["paragraphs"][0]


def test_add_a_file_copies_it_after_its_reader_accepts_it(tmp_path, capsys):
    storage = ["--corpus", str(tmp_path / "c"), "--db", str(tmp_path / "n.db")]
    story = tmp_path / "ferry.md"
    story.write_text("---\ntitle: Ferry strike ends\noutlet: Harbour Herald\npublished: 2024-02-02\n---\n\n"
                     "The ferry strike ended on Friday after the union accepted a new pay offer.\n", encoding="utf-8")
    code, out, err = run(capsys, "add", str(story), *storage)
    assert code == 0, err
    assert out.splitlines()[:4] == ["Added: Ferry strike ends", "Harbour Herald · 2024-02-02 · 1 paragraphs",
                                    "> The ferry strike ended on Friday after the union accepted a new pay offer.",
                                    "Saved as added/ferry.md"]
    assert (tmp_path / "c" / "added" / "ferry.md").read_bytes() == story.read_bytes()
    code, out, err = run(capsys, "add", str(story), *storage)
    assert (code, err) == (1, "Error: Not added: ferry.md is the same article as added/ferry.md.\n")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG")
    code, out, err = run(capsys, "add", str(tmp_path / "pic.png"), *storage)
    assert code == 1 and err.startswith("Error: pic.png is not an article file.")


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1/x", "127.0.0.1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://localhost/x", "localhost resolves to"),
])
def test_add_refuses_private_addresses_in_one_line(tmp_path, capsys, monkeypatch, url, reason):
    monkeypatch.delenv("NEWSDESK_ALLOW_PRIVATE_URLS", raising=False)
    storage = ["--corpus", str(tmp_path / "c"), "--db", str(tmp_path / "n.db")]
    code, out, err = run(capsys, "add", url, *storage)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"Error: Not added: {url}: refused: ") and reason in err


def test_the_shipped_corpus_is_not_added_to(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NEWSDESK_CORPUS", raising=False)
    code, out, err = run(capsys, "fetch", "--db", str(tmp_path / "n.db"))
    assert code == 1 and err.startswith("Error: The shipped articles are not a place to add to.")
