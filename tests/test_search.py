"""index.search through index.desk: paraphrased questions find their passage, unrelated ones get no quote,
and every quote shown is the corpus's own words with its source."""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from index.analysis import fold_text
from index.desk import Newsdesk
from index.errors import QueryError
from index.search import Searcher, SearchSettings

from tests.conftest import SHIPPED_CORPUS, SeedIndex, copy_db

ID = re.compile(r"[a-z2-7]{7,}")


@dataclass(frozen=True)
class Loaded:
    searcher: Searcher
    texts: dict[str, str]          # passage id -> stored text


@pytest.fixture(scope="module")
def loaded(seed_index: SeedIndex, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """The seed index loaded once for this module; searching is pure CPU and changes nothing."""
    db = copy_db(seed_index.db, tmp_path_factory.mktemp("search") / "seed.db")

    async def load() -> Loaded:
        async with await Newsdesk.open(db, seed_index.corpus, build_if_missing=False) as desk:
            records = await desk.passages(desk.searcher.passage_ids)
            return Loaded(desk.searcher, {pid: record.text for pid, record in records.items()})

    return asyncio.run(load())


def normalized(text: str) -> str:
    return " ".join(fold_text(text).casefold().split())


def rank_of(loaded: Loaded, question: str, expected: list[str], k: int) -> int | None:
    result = loaded.searcher.search(question, k=k)
    wanted = [normalized(s) for s in expected]
    for rank, hit in enumerate(result.hits, start=1):
        if any(w in normalized(loaded.texts[hit.passage_id]) for w in wanted):
            return rank
    return None


# -- paraphrased questions about the shipped corpus -----------------------------------------------
# (question, substrings of which any marks the answering passage, id). The wording differs from the
# articles' on purpose: synonyms, other word forms, acronyms and their long forms, name spellings.

QUESTIONS = [
    ("Which countries bombed the PFG?", ["PFG accused Egypt and the UAE of bombing",
                                         "UAE and Egyptian warplanes bombed PFG forces"], "pfg-bombers"),
    ("How many PFG fighters died in the airstrikes near Ras Lanuf?", ["Four PFG fighters were killed"], "pfg-dead"),
    ("Who leads the Petroleum Facilities Guard?", ["Ibrahim Jadhran"], "pfg-leader"),
    ("Who is the LNA spokesman?", ["al-Mismari"], "lna-spokesman"),
    ("Who is Hegazy?", ["Hegazi", "Hegazy"], "hegazy"),
    ("Who would chair the emergency military meeting in Cairo?", ["Mohammad Hegazi"], "meeting-chair"),
    ("Did Emirati planes help Haftar?", ["Emirati air forces provide Haftar"], "emirati-planes"),
    ("Which oil ports did the LNA capture?", ["seized Zueitina, Brega, Ras Lanuf and al-Sidra"], "lna-ports"),
    ("How many times has Haftar visited Egypt this year?", ["visited Egypt four times"], "egypt-visits"),
    ("Where did Haftar go after leaving Egypt?", ["headed to Jordan"], "after-egypt"),
    ("Did Russia block the UN statement on Tripoli?", ["Russia vetoed a UN Security Council statement"], "russia-veto"),
    ("What did Mismari say about Turkey?", ["Turkey was involved in supporting militias",
                                            "sends weapons directly to Misrata"], "mismari-turkey"),
    ("What did Italy supply to the militias at the air force academy?",
     ["modern radar and sophisticated air defence systems"], "italy-radar"),
    ("Where would Russia set up an air base?", ["second military air base in the Mediterranean"], "russia-base"),
    ("What arms is Russia offering Haftar?", ["offering Haftar armaments"], "russia-arms"),
    ("What did Trump say about Putin?", ["get along great", "admiration for Putin"], "trump-putin"),
    ("Why did Egyptian jets bomb Derna?", ["Derna Shura Council", "vengeance"], "derna-why"),
    ("Who claimed the attack on the Coptic Christians?", ["claimed responsibility"], "coptic-claim"),
    ("Who did Haftar meet in Russia?", ["Sergei Shoigu"], "russia-meeting"),
    ("How much of Libya's oil exports pass through the four ports?", ["lion\u2019s share of Libya\u2019s oil exports"],
     "oil-share"),
    ("Who captured Ras Lanuf airport?", ["took control of Ras Lanuf Airport"], "airport"),
    ("Does the UAE support Haftar?", ["Emirati air forces provide Haftar", "United Arab Emirates",
                                      "including Egypt and the UAE"], "uae-support"),
    ("Which borders did Haftar ask the Egyptian army to protect?", ["from Imsaad, in the north"], "borders"),
    ("Who controls the oil tankers from Haftar-held regions?", ["under Egypt\u2019s authority"], "tankers"),
    ("What happened at al-Wahat?", ["attack in al-Wahat"], "wahat"),
    ("Who refuses to recognise the UN-backed government?", ["refuses to recognize the U.N.-backed government"],
     "recognise"),
    ("What is the Tobruk government's stance on Haftar?", ["backed by the Tobruk government"], "tobruk"),
    ("What is the goal of Haftar's Moscow trip according to Abd al-Kafy?", ["The target of Haftar\u2019s visit to Moscow"],
     "kafy"),
    ("Who is the Egyptian foreign minister?", ["Sameh Shoukry"], "foreign-minister"),
    ("What did al-Mismari say about the airbase in Misrata?", ["full-blown Italian base"], "italian-base"),
    ("Which Arab countries back Haftar?", ["several Arab nations, including Egypt"], "arab-backers"),
    ("Did the Emiratis bomb PFG forces?", ["UAE and Egyptian warplanes bombed PFG forces",
                                           "PFG accused Egypt and the UAE"], "emiratis-bomb"),
    ("Who is Sisi's ally in Libya?", ["his ally Khalifa Haftar"], "sisi-ally"),
    ("What did the Defence Ministry say about foreign warplanes?", ["foreign warplanes have played a key role",
                                                                    "foreign warplanes played a key role"], "warplanes"),
    ("Who are Haftar's backers?", ["He enjoys the support of several Arab nations",
                                   "supported by Egypt and some Gulf countries"], "backers"),
    ("Which news agency reported on the displaced people of Benghazi?", ["Boshra News Agency"], "boshra"),
    ("What did Sisi and Haftar discuss in Cairo?", ["Sisi and Haftar discussed developments in Libya"], "sisi-talks"),
    ("Did Turkey and Qatar back the Tripoli militias?", ["Turkey and Qatar, with the help of Italy"], "turkey-qatar"),
]

# Measured on the current ranking; each mark names what goes wrong. Remove a mark when the question passes
# (strict xfail fails the run to say so).
MISSED_AT_3 = {
    "meeting-chair": "not in the top 10: 'chair' never occurs and 'would' matches an unrelated paragraph first",
    "lna-ports": "rank 7: the passage says 'seized', the question 'capture'; Oil Crescent paragraphs rank first",
    "after-egypt": "rank 4: the passage says 'left Egypt ... headed to Jordan'; Egyptian Armed Forces paragraphs "
                   "rank first",
    "backers": "not in the top 10: 'backers' matches neither 'backed' nor 'support'",
    "sisi-talks": "not in the top 10: 'Sisi and Haftar discussed' (003) loses to 004's paragraphs, whose article "
                  "title adds Haftar and Cairo to every paragraph",
}
MISSED_AT_1 = dict(MISSED_AT_3, **{
    "trump-putin": "rank 2: 'Putin said ...' after Trump's election outranks Trump's words about Putin",
    "coptic-claim": "rank 2: the paragraph about the attack on Copts outranks the one saying who claimed it",
    "italian-base": "rank 2: Mir'ash on 'the airbase in Misrata' outranks Mismari on the 'full-blown Italian base'",
})


def questions_with_marks(missed: dict[str, str]) -> list:
    return [pytest.param(question, expected, id=qid,
                         marks=[pytest.mark.xfail(strict=True, reason=missed[qid])] if qid in missed else [])
            for question, expected, qid in QUESTIONS]


def test_there_are_enough_questions():
    assert len(QUESTIONS) >= 20
    assert len({qid for _, _, qid in QUESTIONS}) == len(QUESTIONS)
    assert set(MISSED_AT_1) <= {qid for _, _, qid in QUESTIONS}


def test_every_expected_substring_is_in_the_corpus(loaded):
    """Guards the data above: each question's answer exists in the index."""
    corpus = [normalized(text) for text in loaded.texts.values()]
    for question, expected, _ in QUESTIONS:
        assert any(normalized(s) in text for s in expected for text in corpus), question


@pytest.mark.parametrize(("question", "expected"), questions_with_marks(MISSED_AT_3))
def test_answer_is_in_the_top_3(loaded, question, expected):
    assert rank_of(loaded, question, expected, k=3) is not None


@pytest.mark.parametrize(("question", "expected"), questions_with_marks(MISSED_AT_1))
def test_answer_is_first(loaded, question, expected):
    assert rank_of(loaded, question, expected, k=1) == 1


# -- no answer rather than an unrelated quote ------------------------------------------------------


UNRELATED = [
    "What is the capital of Peru?",
    "How do I bake bread?",
    "Who won the 2018 World Cup?",
    "What is the boiling point of water?",
    "How do I reset my router password?",
    "What's a good recipe for lasagna?",
]
ANSWERED_ANYWAY: dict[str, str] = {}


@pytest.mark.parametrize("question", [
    pytest.param(q, marks=[pytest.mark.xfail(strict=True, reason=ANSWERED_ANYWAY[q])] if q in ANSWERED_ANYWAY else [])
    for q in UNRELATED])
def test_unrelated_question_abstains_with_a_reason(loaded, question):
    result = loaded.searcher.search(question, k=5)
    assert result.hits == []
    assert result.abstained and len(result.abstained) > 10


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_query_error(loaded, question):
    with pytest.raises(QueryError, match="empty"):
        loaded.searcher.search(question)


@pytest.mark.parametrize("question", ["who is the?", "What is it and why?", "and the of"])
def test_question_of_only_stopwords_abstains(loaded, question):
    result = loaded.searcher.search(question)
    assert result.hits == []
    assert "no searchable words" in result.abstained


def test_overlong_question_is_a_query_error(loaded):
    with pytest.raises(QueryError, match="too long"):
        loaded.searcher.search("Haftar " * 500)


def test_expansion_reports_what_else_was_searched(loaded):
    result = loaded.searcher.search("who bombed the PFG?")
    assert "Petroleum Facilities Guard" in result.expanded_terms or "Petroleum Facilities Guards" in result.expanded_terms
    assert result.hits


def test_paging_with_offset_continues_the_ranking(loaded):
    first = loaded.searcher.search("Haftar Egypt army", k=6)
    second = loaded.searcher.search("Haftar Egypt army", k=3, offset=3)
    assert [h.passage_id for h in second.hits] == [h.passage_id for h in first.hits[3:6]]


# -- restricting to one article --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_within_one_article_gives_only_its_passages(seed_db, seed_index):
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        everywhere = await desk.ask("Haftar visit to Cairo", k=10)
        sources = {r.record.places[0].article.source for r in everywhere.results}
        assert len(sources) > 1

        source = "004_fd8deb390daa752a.txt"
        answer = await desk.ask("Haftar visit to Cairo", k=10, source=source)
        assert answer.results
        for r in answer.results:
            assert source in {place.article.source for place in r.record.places}

        # The PFG paragraph printed by 001 and 002 is found from either article.
        shared = await desk.ask("PFG accused Egypt and the UAE of bombing", k=3, source="002_8b0c8cfba84b287d.txt")
        assert shared.results[0].record.text.startswith("\u201cPFG accused Egypt")

        missing = await desk.ask("Who is Hegazy?", source="003_c877ea3053c63f58.txt")
        assert missing.results == [] and missing.abstained


# -- every quote is verbatim and cited ------------------------------------------------------------

MORE_QUESTIONS = [
    "Haftar", "Egypt Libya", "LNA", "UAE", "U.N.-backed government", "oil terminals", "Russia Moscow Putin",
    "why did Egypt bomb Derna", "Haftar\u2019s militias", "al-Sisi\u2019s support", "Mir\u2019ash said Italy",
    "\u201cforeign warplanes\u201d", "Libyan-Sudanese borders", "Benghazi Defense Brigades (BDB)",
]


def corpus_files_text() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in SHIPPED_CORPUS.iterdir()}


@pytest.mark.asyncio
async def test_every_quote_is_verbatim_and_cited(seed_db, seed_index):
    files = corpus_files_text()
    seen = 0
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        for question in [q for q, _, _ in QUESTIONS] + MORE_QUESTIONS:
            answer = await desk.ask(question, k=5)
            for r in answer.results:
                seen += 1
                record, quote = r.record, r.quote
                assert quote.text == record.text
                assert quote.is_verbatim(record.text)
                assert all(piece and piece in record.text for piece in quote.pieces)
                assert all(any(s <= hs and he <= e for s, e in quote.spans) for hs, he in quote.highlights)
                assert ID.fullmatch(record.id)
                assert record.places
                for place in record.places:
                    assert place.article.title
                    assert place.paragraph >= 1
                    assert record.text in files[place.article.source]
    assert seen >= 100


LONG_ARTICLE = """Harbour works report

{long}

A short closing paragraph about the zanzibar quay.
"""


@pytest.mark.asyncio
async def test_quotes_from_long_paragraphs_are_verbatim_pieces(tmp_path, db_file):
    """Paragraphs past the quote length are cut to sentences: each piece still the corpus's own words."""
    corpus = Path(shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus"))
    topics = ["quay", "crane", "dredger", "breakwater", "pilot boat", "tug", "berth", "lighthouse"]
    sentences = [f"The {topics[i % 8]}\u00a0of the zanzibar harbour was \u201crepaired\u201d by crew {i}, "
                 f"said Mr. Okafor of the U.N. port office." for i in range(40)]
    (corpus / "900_long.txt").write_text(LONG_ARTICLE.format(long=" ".join(sentences)), encoding="utf-8")
    async with await Newsdesk.open(db_file, corpus) as desk:
        answers = [await desk.ask(q, k=5) for q in
                   ["zanzibar harbour lighthouse", "who repaired the dredger", "Okafor U.N. port office", "tug crew 17"]]
    cut = 0
    for answer in answers:
        assert answer.results
        for r in answer.results:
            assert r.quote.is_verbatim(r.record.text)
            assert all(piece in r.record.text for piece in r.quote.pieces)
            cut += r.quote.cut_before or r.quote.cut_after or len(r.quote.spans) > 1
    assert cut > 0          # the long paragraph was quoted in part


# -- article-level evidence: each candidate passage's article scored as a whole --------------------------

ZANZIBAR = ["The harbour crane and the harbour crane.", "Rice farms flooded in the valley.",
            "A harbour crane was bought.", "Zanzibar opened its new port on Monday."]


def article_searcher(texts: list[str], article_weight: float = SearchSettings.article_weight,
                     article_tie: float = SearchSettings.article_tie) -> Searcher:
    """Four passages in two articles: passages 0 and 1 are article B, passages 2 and 3 article A."""
    import numpy as np

    from index.analysis import SentenceSplitter
    from index.bm25 import BM25Index, BM25Params
    from index.search import ArticleEvidence
    from index.vocabulary import Vocabulary, make_analyzer

    analyzer = make_analyzer(Vocabulary.load())
    article_of = np.array([0, 0, 1, 1], dtype=np.int32)
    tokens = [analyzer.tokenize(t) for t in texts]
    index = BM25Index.build(tokens, BM25Params("plus", 0.6, 0.9))
    articles = ArticleEvidence.build(index, article_of, np.array([len(t) for t in tokens]), [np.zeros(0), np.zeros(0)])
    return Searcher(index, ["b1", "b2", "a1", "a2"], analyzer,
                    SentenceSplitter(), settings=SearchSettings(min_coverage=0.0, article_weight=article_weight,
                                                               article_tie=article_tie), articles=articles)


def ranked(searcher: Searcher, question: str, **kwargs) -> list[str]:
    return [h.passage_id for h in searcher.search(question, k=4, **kwargs).hits]


def test_article_evidence_prefers_the_passage_whose_article_matches_the_whole_question():
    """B's harbour paragraph says "crane" twice, but A is the zanzibar story."""
    question = "zanzibar harbour crane"
    assert ranked(article_searcher(ZANZIBAR, article_weight=0.0), question)[:2] == ["b1", "a1"]
    order = ranked(article_searcher(ZANZIBAR), question)
    assert order[0] == "a1"                           # harbour crane, in the zanzibar article
    assert "b2" not in order                          # no question word: its article alone does not bring it


def test_article_evidence_respects_within():
    assert ranked(article_searcher(ZANZIBAR), "zanzibar harbour crane", within={"b1", "b2"}) == ["b1"]


def test_articles_that_match_about_as_well_share_the_top():
    """News: several stories on one topic. B's second passage gives way to A's first, so more stories show."""
    texts = ["The harbour crane and the harbour crane.", "The harbour crane and the old harbour crane.",
             "A harbour crane, the crane, was bought.", "The harbour crane broke, the harbour."]
    assert ranked(article_searcher(texts), "harbour crane")[:2] == ["b1", "a1"]
    assert ranked(article_searcher(texts, article_tie=2.0), "harbour crane")[:2] == ["b1", "b2"]   # never spread


def test_a_clearly_better_article_keeps_its_passages_together():
    """SQuAD: the question names one article; its neighbouring passages are the likely answers."""
    texts = ["The harbour crane and the harbour crane.", "The harbour crane broke down.",
             "A harbour crane was bought.", "Rice farms flooded in the valley."]
    assert ranked(article_searcher(texts), "harbour crane")[:2] == ["b1", "b2"]
    assert ranked(article_searcher(texts, article_tie=0.0), "harbour crane")[:2] == ["b1", "a1"]   # always spread


def _whole_article_scores(article_docs: list[list[str]], terms: list[str]):
    """rank-bm25's BM25Plus over whole articles, through our own index (its parity with rank-bm25 is tested
    in test_bm25.py), counting only the query terms some article contains, as article evidence does."""
    from index.bm25 import BM25Index
    from index.search import ARTICLE_PARAMS

    whole = BM25Index.build(article_docs, ARTICLE_PARAMS)
    return whole.scores([t for t in terms if t in whole.term_ids])


def test_article_evidence_equals_bm25_over_whole_articles_rare_terms_included():
    """Article scores read from the passage index equal BM25+ over each article's own words and its title
    once, even for terms numbered past 65,535 (the forward index stores those aside)."""
    import random

    import numpy as np

    from index.bm25 import BM25Index, BM25Params
    from index.search import ArticleEvidence

    rng = random.Random(7)
    common = [f"w{i}" for i in range(40)]
    own = [[rng.choice(common) for _ in range(rng.randint(1, 30))] + [f"u{p}_{j}" for j in range(rng.randint(1000, 3000))]
           for p in range(40)]
    article_of = np.array([rng.randrange(6) for _ in own], dtype=np.int32)
    article_of[:6] = np.arange(6)                               # every article has a passage
    titles = [[rng.choice(common), f"title{a}"] for a in range(6)]
    contexts = [titles[a] + ["section", rng.choice(common)] for a in article_of]
    index = BM25Index.build([o + c for o, c in zip(own, contexts)], BM25Params("plus", 0.6, 0.9))
    assert len(index.vocabulary) > 65_536                        # some terms are stored aside
    evidence = ArticleEvidence.build(index, article_of, np.array([len(o) for o in own]),
                                     [np.array([index.term_ids[t] for t in title]) for title in titles])
    article_docs = [[t for p, o in enumerate(own) if article_of[p] == a for t in o] + titles[a] for a in range(6)]
    rare = [t for t in index.vocabulary[65_536:] if not t.startswith("title")][:5]
    for terms in (["w1", "w2", "title3"], rare + ["w5"], ["section", "w7", "w7"], [rare[0], "title0"]):
        weights: dict[int, float] = {}
        for t in terms:
            weights[index.term_ids[t]] = weights.get(index.term_ids[t], 0.0) + 1.0
        got = evidence.scores(np.arange(6), weights)
        assert np.allclose(got, _whole_article_scores(article_docs, terms), rtol=1e-12, atol=1e-12), terms


def test_the_build_stores_article_evidence_over_its_articles(seed_index):
    """The shipped corpus through the product's build and store: each article's score is BM25+ over its
    passages' own words and its title, as the stored passages and articles say."""
    import sqlite3

    import numpy as np

    async def loaded():
        desk = await Newsdesk.open(seed_index.db, seed_index.corpus)
        try:
            return desk._loaded()[0]
        finally:
            await desk.close()

    searcher = asyncio.run(loaded())
    assert searcher.articles is not None
    with sqlite3.connect(seed_index.db) as conn:
        tokens = dict(conn.execute("SELECT id, tokens FROM passages"))
        sources = conn.execute("SELECT source, title FROM articles").fetchall()
        primary = {}
        for pid, source in conn.execute(
                "SELECT o.passage_id, a.source FROM occurrences o JOIN articles a USING (source) "
                "ORDER BY o.passage_id, a.published IS NULL, a.published, a.source, o.paragraph"):
            primary.setdefault(pid, source)
    number = {}
    for doc, pid in enumerate(searcher.passage_ids):
        assert number.setdefault(primary[pid], int(searcher.articles.article_of[doc])) == searcher.articles.article_of[doc]
    title_of = dict(sources)
    article_docs = [[] for _ in number]
    for pid in searcher.passage_ids:
        article_docs[number[primary[pid]]] += tokens[pid].split()
    for source, a in number.items():
        article_docs[a] += searcher.analyzer.tokenize(title_of[source] or "")
    question = searcher.analyzer.tokenize("Which countries bombed the PFG forces near the oil ports?")
    weights = searcher.index.query_weights(question)
    got = searcher.articles.scores(np.arange(len(number)), weights)
    assert np.allclose(got, _whole_article_scores(article_docs, question), rtol=1e-12)


@pytest.mark.parametrize("depth", [8, 20])
def test_pages_neither_repeat_nor_skip_a_passage_past_the_reordered_ones(loaded: Loaded, depth: int):
    """The "More" button asks for the next page; past the candidates article evidence and proximity re-order, pages
    still join up into one list (re-ordering every candidate asked for made the order depend on the depth)."""
    import dataclasses

    searcher = loaded.searcher
    searcher_settings = searcher.settings
    searcher.settings = dataclasses.replace(searcher_settings, rerank_depth=depth)
    try:
        for question in ("Haftar Egypt Libya", "which countries bombed the PFG?", "Russia Moscow visit"):
            whole = [h.passage_id for h in searcher.search(question, k=200).hits]
            assert len(whole) > depth + 10, question          # the pages reach past the re-ordered ones
            paged = [h.passage_id for offset in range(0, len(whole), 5)
                     for h in searcher.search(question, k=5, offset=offset).hits]
            assert paged == whole, question
    finally:
        searcher.settings = searcher_settings
