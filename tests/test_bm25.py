"""index.bm25: rank-bm25's exact scores from an inverted index, and a top-k that never misses a document."""

from __future__ import annotations

import json
import random
import sys
import threading

import numpy as np
import pytest
from rank_bm25 import BM25L, BM25Okapi, BM25Plus

from index.analysis import Analyzer
import index.bm25
from index.bm25 import BM25Index, BM25Params, TermSequence
from index.build import DEFAULT_PARAMS
from index.corpus import parse_file, scan_corpus

from tests.conftest import SHIPPED_CORPUS

REFERENCE = {"okapi": BM25Okapi, "l": BM25L, "plus": BM25Plus}
TOLERANCE = 1e-6


def reference(method: str, docs: list[list[str]], k1: float, b: float, delta: float, epsilon: float):
    if method == "okapi":
        return BM25Okapi(docs, k1=k1, b=b, epsilon=epsilon)
    return REFERENCE[method](docs, k1=k1, b=b, delta=delta)


def random_corpus(rng: random.Random, num_docs: int, vocabulary: int, skew: float = 1.0) -> list[list[str]]:
    """Documents of Zipf-ish words: a few very common terms, a long tail of rare ones."""
    words = [f"w{i}" for i in range(vocabulary)]
    weights = [1.0 / (rank + 1) ** skew for rank in range(vocabulary)]
    return [rng.choices(words, weights, k=rng.randint(1, 40)) for _ in range(num_docs)]


def random_query(rng: random.Random, docs: list[list[str]]) -> list[str]:
    known = sorted({t for d in docs for t in d})
    query = rng.sample(known, k=min(len(known), rng.randint(1, 5)))
    query += rng.choices(query, k=rng.randint(0, 2))                   # repeated tokens count again
    query += [f"unknown{rng.randint(0, 9)}" for _ in range(rng.randint(0, 2))]
    rng.shuffle(query)
    return query


def expected_top_k(index: BM25Index, tokens, k: int) -> list[tuple[int, float]]:
    """Exhaustive: every document containing a query term, by score desc, then document number."""
    weights = tokens if isinstance(tokens, dict) else index.query_weights(tokens)
    scores = index.scores(weights)
    matching = {int(d) for t in weights for d in index.doc_ids[index.indptr[t]:index.indptr[t + 1]]}
    return sorted(((d, float(scores[d])) for d in matching), key=lambda pair: (-pair[1], pair[0]))[:k]


def assert_same_ranking(got, want) -> None:
    assert [doc for doc, _ in got] == [doc for doc, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-9)


# -- parity with rank-bm25 --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["okapi", "l", "plus"])
@pytest.mark.parametrize("seed", range(6))
def test_scores_equal_rank_bm25_on_random_corpora(method, seed):
    rng = random.Random(f"{method}-{seed}")
    docs = random_corpus(rng, num_docs=rng.randint(2, 120), vocabulary=rng.randint(3, 200))
    k1, b = rng.choice([0.5, 1.2, 1.5, 2.0]), rng.choice([0.0, 0.3, 0.75, 1.0])
    delta, epsilon = rng.choice([0.5, 1.0, 1.5]), rng.choice([0.0, 0.25, 0.5])
    ours = BM25Index.build(docs, BM25Params(method, k1=k1, b=b, delta=delta, epsilon=epsilon))
    theirs = reference(method, docs, k1, b, delta, epsilon)
    for _ in range(15):
        query = random_query(rng, docs)
        assert np.allclose(ours.scores(query), theirs.get_scores(query), rtol=0, atol=TOLERANCE), query


@pytest.fixture(scope="module")
def seed_tokens() -> list[list[str]]:
    files, _ = scan_corpus(SHIPPED_CORPUS)
    analyzer = Analyzer()
    return [analyzer.tokenize(p.text) for f in files for a in parse_file(f)[0] for p in a.paragraphs]


@pytest.mark.parametrize("method", ["okapi", "l", "plus"])
def test_scores_equal_rank_bm25_on_the_seed_corpus(seed_tokens, method):
    params = BM25Params(method, k1=1.5, b=0.75, delta=1.0 if method == "plus" else 0.5, epsilon=0.25)
    ours = BM25Index.build(seed_tokens, params)
    theirs = reference(method, seed_tokens, params.k1, params.b, params.delta, params.epsilon)
    analyzer = Analyzer()
    for question in ["who bombed the PFG forces in Ras Lanuf", "Haftar Haftar Egypt", "Russia air base Mediterranean",
                     "Egyptian army borders Libyan-Sudanese", "Libya", "zebra crossing"]:
        query = analyzer.tokenize(question)
        assert np.allclose(ours.scores(query), theirs.get_scores(query), rtol=0, atol=TOLERANCE), question


def test_defaults_are_bm25_plus():
    """BM25+ gives every matching term a positive weight; the tests below hold it to that."""
    assert BM25Params().method == DEFAULT_PARAMS.method == "plus"
    assert DEFAULT_PARAMS.delta > 0


# -- the rank-bm25 defect the defaults avoid -------------------------------------------------------


def test_term_in_half_the_documents_still_counts():
    """BM25Okapi's idf is exactly 0 for a term in half the documents: matching it earns nothing."""
    docs = [["oil", "port"], ["oil", "tanker"], ["desert"], ["border"]]
    okapi = BM25Okapi(docs)
    assert okapi.get_scores(["oil"]).tolist() == [0.0, 0.0, 0.0, 0.0]
    ours = BM25Index.build(docs, DEFAULT_PARAMS)
    scores = ours.scores(["oil"])
    assert scores[0] > scores[2] and scores[1] > scores[3]
    assert [hit.doc for hit in ours.top_k(["oil"], 10)] == [0, 1]


def test_term_in_every_document_keeps_a_positive_weight():
    """When most terms are common, BM25Okapi's floor (epsilon x mean idf) is negative: matching costs score."""
    docs = [["libya", "haftar", "egypt"], ["libya", "haftar"], ["libya", "egypt"], ["libya", "haftar", "egypt", "oil"]]
    okapi = BM25Okapi(docs)
    assert okapi.idf["libya"] < 0
    assert (okapi.get_scores(["libya"]) < 0).all()
    ours = BM25Index.build(docs, DEFAULT_PARAMS)
    assert ours.term_weight("libya") > 0
    assert (ours.scores(["libya"]) > 0).all()
    # One more matching word always raises a score.
    assert (ours.scores(["oil", "libya"]) > ours.scores(["oil"])).all()
    assert [hit.doc for hit in ours.top_k(["libya", "oil"], 1)] == [3]


@pytest.mark.parametrize("seed", range(5))
def test_default_weights_are_positive_for_every_term(seed):
    rng = random.Random(seed)
    docs = random_corpus(rng, num_docs=rng.randint(1, 60), vocabulary=rng.randint(2, 30), skew=2.0)
    docs.append([t for d in docs for t in set(d)])    # a document holding every term
    index = BM25Index.build(docs, DEFAULT_PARAMS)
    assert (index.impacts[:] > 0).all()
    assert all(index.term_weight(term) > 0 for term in index.vocabulary)


# -- top-k ----------------------------------------------------------------------------------------


@pytest.fixture(params=["pruning, reading lists", "pruning, looking up candidates", "default"])
def pruning(request, monkeypatch):
    """Small corpora are read whole by default (pruning costs more than it saves below thousands of
    postings): when pruning, every query on them goes through the MaxScore machinery instead, and its
    refine steps either read each postings list whole or look every candidate up in it."""
    if request.param.startswith("pruning"):
        monkeypatch.setattr(index.bm25, "_WORTH_PRUNING", 0)
        monkeypatch.setattr(index.bm25, "_LOOKUP_BELOW", 0.0 if "reading" in request.param else float("inf"))
    return request.param


def test_top_k_breaks_ties_by_document_number():
    docs = [["zeta", "pad"], ["alpha", "beta"], ["alpha", "beta"], ["gamma", "pad"], ["alpha", "beta"], ["beta", "alpha"]]
    index = BM25Index.build(docs)
    hits = index.top_k(["alpha"], 10)
    assert [hit.doc for hit in hits] == [1, 2, 4, 5]
    assert len({hit.score for hit in hits}) == 1
    assert [hit.doc for hit in index.top_k(["alpha"], 2)] == [1, 2]


def test_top_k_orders_by_score_then_document():
    docs = [["oil"], ["oil", "oil", "port"], ["port"], ["oil", "port"], ["oil", "oil", "port"]]
    index = BM25Index.build(docs)
    hits = index.top_k(["oil", "port"], 3)
    assert_same_ranking([(h.doc, h.score) for h in hits], expected_top_k(index, ["oil", "port"], 3))
    assert [h.doc for h in hits][:2] == [1, 4]          # equal documents: the lower number first
    assert hits[0].score == hits[1].score > hits[2].score


def test_top_k_returns_only_matching_documents():
    index = BM25Index.build([["oil"], ["desert"], ["oil", "port"], ["border"]])
    assert [hit.doc for hit in index.top_k(["oil"], 10)] == [0, 2]
    assert index.top_k(["unknown"], 10) == []
    assert index.top_k(["oil"], 0) == []


@pytest.mark.parametrize("method", ["okapi", "l", "plus"])
@pytest.mark.parametrize("seed", range(8))
def test_top_k_equals_exhaustive_ranking_on_skewed_corpora(method, seed, pruning):
    rng = random.Random(f"top-{method}-{seed}")
    docs = random_corpus(rng, num_docs=rng.randint(20, 400), vocabulary=rng.randint(5, 300), skew=1.3)
    index = BM25Index.build(docs, BM25Params(method))
    for _ in range(25):
        query = random_query(rng, docs)
        k = rng.choice([1, 2, 3, 5, 10, 50])
        got = [(h.doc, h.score) for h in index.top_k(query, k)]
        assert_same_ranking(got, expected_top_k(index, query, k))


@pytest.mark.parametrize("seed", range(4))
def test_top_k_with_weighted_terms_equals_exhaustive_ranking(seed, pruning):
    """The searcher passes fractional weights (expansion terms); pruning must respect them."""
    rng = random.Random(f"weights-{seed}")
    docs = random_corpus(rng, num_docs=300, vocabulary=150, skew=1.5)
    index = BM25Index.build(docs)
    for _ in range(25):
        terms = rng.sample(range(len(index.vocabulary)), k=rng.randint(1, 6))
        weights = {t: rng.choice([0.1, 0.2, 0.6, 1.0, 2.0]) for t in terms}
        k = rng.choice([1, 3, 5, 20])
        got = [(h.doc, h.score) for h in index.top_k(weights, k)]
        assert_same_ranking(got, expected_top_k(index, weights, k))


def test_top_k_with_many_copies_keeps_every_tie_and_the_lowest_numbers(pruning):
    """Copies of one passage tie exactly; pruning must not drop a copy that ties the k-th best."""
    rng = random.Random("copies")
    base = random_corpus(rng, num_docs=150, vocabulary=120, skew=1.2)
    docs = [base[i % len(base)] for i in range(len(base) * 7)]
    index = BM25Index.build(docs)
    for _ in range(40):
        query = random_query(rng, base)
        k = rng.choice([1, 3, 10, 12])
        got = [(h.doc, h.score) for h in index.top_k(query, k)]
        assert_same_ranking(got, expected_top_k(index, query, k))


def test_top_k_over_one_and_two_byte_codes_equals_exhaustive_ranking(pruning):
    """Terms stored with one-byte codes and with table codes, weighted, tied (copies), and k past the matches."""
    rng = random.Random("codes-top-k")
    base = varied_corpus(rng)[:400]
    docs = base + base[:150]                     # copies tie exactly with their originals
    index = BM25Index.build(docs, BM25Params("plus", k1=1.2, b=0.75, delta=1.0))
    impacts = index.impacts
    assert len(impacts.narrow) and len(impacts.wide)
    vocabulary = list(index.term_ids)
    for _ in range(40):
        terms = rng.sample(vocabulary, k=rng.randint(1, 5))
        weights = {index.term_ids[term]: rng.choice([0.3, 1.0, 1.0, 2.0]) for term in terms}
        k = rng.choice([1, 3, 10, 100, 1000])
        got = [(h.doc, h.score) for h in index.top_k(weights, k)]
        assert_same_ranking(got, expected_top_k(index, weights, k))


def test_okapi_with_negative_impacts_ranks_every_match_exhaustively(pruning):
    """BM25Okapi's floor is negative when most terms are common: matching can lower a score, so MaxScore's
    bounds do not hold and top-k scores every match instead."""
    rng = random.Random("okapi-negative")
    common = ["libya", "haftar", "egypt", "oil"]
    docs = [rng.sample(common, k=rng.randint(2, 4)) + rng.choices(["port", "tanker", "desert"], k=rng.randint(0, 2))
            for _ in range(300)]
    index = BM25Index.build(docs, BM25Params("okapi", epsilon=0.25))
    assert not index.all_positive
    assert any(score < 0 for _, score in expected_top_k(index, ["libya"], 400))
    for _ in range(30):
        query = random_query(rng, docs)
        k = rng.choice([1, 5, 20, 400])
        got = [(h.doc, h.score) for h in index.top_k(query, k)]
        assert_same_ranking(got, expected_top_k(index, query, k))


def test_concurrent_searches_from_threads_get_their_own_results():
    """The bot searches from worker threads: each thread's scratch scores must not leak into another's."""
    rng = random.Random("threads")
    docs = random_corpus(rng, num_docs=3000, vocabulary=400, skew=1.1)
    index = BM25Index.build(docs)
    queries = [random_query(rng, docs) for _ in range(60)]
    expected = [index.top_k(q, 10) for q in queries]
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def search(n: int) -> None:
        try:
            results[n] = [index.top_k(q, 10) for q in (queries[n:] + queries[:n])]
        except BaseException as e:   # surfaced below, not lost in the thread
            errors.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)      # switch threads between numpy calls, mid-query
    try:
        threads = [threading.Thread(target=search, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    for n, got in results.items():
        assert got == expected[n:] + expected[:n]


# -- persistence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["okapi", "l", "plus"])
def test_arrays_round_trip_gives_identical_scores(method):
    rng = random.Random(f"arrays-{method}")
    docs = random_corpus(rng, num_docs=80, vocabulary=60)
    index = BM25Index.build(docs, BM25Params(method, k1=1.3, b=0.6, delta=0.7, epsilon=0.1))
    blobs = {name: bytes(value) for name, value in index.to_arrays().items()}   # as stored and read back
    restored = BM25Index.from_arrays(blobs)
    assert restored.params == index.params
    assert restored.vocabulary == index.vocabulary
    for _ in range(20):
        query = random_query(rng, docs)
        assert np.array_equal(restored.scores(query), index.scores(query))
        assert restored.top_k(query, 5) == index.top_k(query, 5)


def test_arrays_stored_before_impact_codes_are_still_read():
    """Databases built before this layout hold float64 impacts, int32 term ids and int64 offsets under the
    old names: they are read as they are, and search the same."""
    rng = random.Random("old-layout")
    docs = random_corpus(rng, num_docs=200, vocabulary=90)
    index = BM25Index.build(docs, BM25Params("plus", k1=1.2, b=0.75, delta=1.0))
    forward = index.sequence[0:len(index.sequence)]
    old = {"meta": json.dumps({"params": index.params.__dict__}).encode(),
           "vocabulary": "\n".join(index.vocabulary).encode(),
           "indptr": index.indptr.astype(np.int64).tobytes(), "doc_ids": index.doc_ids.astype(np.int32).tobytes(),
           "impacts": index.impacts[:].astype(np.float64).tobytes(),
           "constants": index.constants.astype(np.float64).tobytes(),
           "sequence": forward.astype(np.int32).tobytes(), "doc_starts": index.doc_starts.astype(np.int64).tobytes()}
    restored = BM25Index.from_arrays(old)
    rewritten = BM25Index.from_arrays({name: bytes(value) for name, value in restored.to_arrays().items()})
    for ix in (restored, rewritten):
        assert ix.sequence[0:len(forward)].tolist() == forward.tolist()
        for _ in range(20):
            query = random_query(rng, docs)
            assert np.array_equal(ix.scores(query), index.scores(query))
            assert ix.top_k(query, 5) == index.top_k(query, 5)


def all_table_codes(index: BM25Index) -> np.ndarray:
    """Every posting's 2-byte table code, as the layout before narrowing stored them."""
    impacts = index.impacts
    parts = []
    for t in range(len(index.vocabulary)):
        codes, own = impacts._codes(t)
        parts.append(codes if own is None else own.take(codes))
    return np.concatenate(parts).astype(np.uint16)


def varied_corpus(rng: random.Random) -> list[list[str]]:
    """Documents of many lengths where "oil" comes up to 30 times: over 256 (tf, length) pairs for "oil", at
    most 151 for "port" (once, in a third of them), and terms seen once or twice, not worth narrowing."""
    docs = []
    for i in range(1500):
        length = rng.randint(1, 120)
        doc = [rng.choice(["desert", "border", "tanker", "libya"]) for _ in range(length)]
        doc += ["oil"] * rng.randint(1, 30)
        if i % 3 == 0:
            doc.append("port")
        if i % 97 == 0:
            doc.append(f"rare{i}")
        rng.shuffle(doc)
        docs.append(doc)
    return docs


def test_terms_using_few_factors_store_one_byte_a_posting_and_score_the_same():
    rng = random.Random("narrow")
    docs = varied_corpus(rng)
    index = BM25Index.build(docs, BM25Params("plus", k1=1.2, b=0.75, delta=1.0))
    impacts = index.impacts
    own = {term: impacts.sub_ptr[t + 1] > impacts.sub_ptr[t] for term, t in index.term_ids.items()}
    assert own["port"] and not own["oil"] and not own["rare0"]
    assert len(impacts.narrow) + len(impacts.wide) == len(impacts) == len(index.doc_ids)
    theirs = BM25Plus(docs, k1=1.2, b=0.75, delta=1.0)
    restored = BM25Index.from_arrays({name: bytes(value) for name, value in index.to_arrays().items()})
    for query in (["oil"], ["port"], ["oil", "port", "rare0"], ["rare97", "desert", "oil", "oil"]):
        for ix in (index, restored):
            assert np.allclose(ix.scores(query), theirs.get_scores(query), rtol=0, atol=TOLERANCE), query
            assert_same_ranking([(h.doc, h.score) for h in ix.top_k(query, 7)], expected_top_k(ix, query, 7))
    # Each posting's impact, however its code is stored, is the factor of its (tf, length) pair times idf.
    table_codes = all_table_codes(index)
    terms = np.repeat(np.arange(len(index.vocabulary)), np.diff(index.indptr))
    assert np.array_equal(impacts[:], impacts.table[table_codes] * index.idf[terms])
    for t in range(len(index.vocabulary)):
        lo, hi = index.indptr[t], index.indptr[t + 1]
        assert np.array_equal(impacts.term(t, 0.6), impacts[lo:hi] * 0.6)
        assert np.array_equal(impacts.of_term_at(t, np.arange(lo, hi)[::2], 1.0), impacts[lo:hi][::2])
        assert index.max_impacts[t] == impacts[lo:hi].max()


def test_arrays_stored_with_two_byte_codes_for_every_posting_are_still_read():
    """The layout before narrowing: one uint16 table code per posting under "impact_codes"."""
    rng = random.Random("two-byte-layout")
    docs = varied_corpus(rng)
    index = BM25Index.build(docs, BM25Params("plus", k1=1.2, b=0.75, delta=1.0))
    stored = {name: bytes(value) for name, value in index.to_arrays().items()}
    meta = json.loads(stored["meta"])
    for name in ("impact_wide", "impact_narrow", "impact_start", "impact_sub_ptr", "impact_subtable"):
        del stored[name], meta["dtypes"][name]
    stored["impact_codes"] = all_table_codes(index).tobytes()
    meta["dtypes"]["impact_codes"] = "<u2"
    stored["meta"] = json.dumps(meta).encode()
    restored = BM25Index.from_arrays(stored)
    rewritten = BM25Index.from_arrays({name: bytes(value) for name, value in restored.to_arrays().items()})
    assert np.array_equal(restored.max_impacts, index.max_impacts)
    for ix in (restored, rewritten):
        assert np.array_equal(ix.impacts[:], index.impacts[:])
        for _ in range(20):
            query = random_query(rng, docs)
            assert np.array_equal(ix.scores(query), index.scores(query))
            assert ix.top_k(query, 5) == index.top_k(query, 5)


def test_forward_index_keeps_terms_beyond_two_bytes():
    """Term ids are numbered by frequency and stored in 2 bytes; the rarest terms of a vocabulary over
    65,535 words are kept aside, and every document still reads back as its own terms."""
    common = ["oil", "port", "tanker"]
    docs = [[f"rare{i}", common[i % 3]] for i in range(TermSequence.ESCAPE + 500)]
    docs.append(["oil", "rare70000", "port", "rare7"])
    index = BM25Index.build(docs)
    assert len(index.vocabulary) > TermSequence.ESCAPE
    assert len(index.sequence.rare_at) > 0
    restored = BM25Index.from_arrays({name: bytes(value) for name, value in index.to_arrays().items()})
    for doc in [0, 7, 65_534, 65_535, len(docs) - 2, len(docs) - 1]:
        for ix in (index, restored):
            terms = ix.sequence[int(ix.doc_starts[doc]):int(ix.doc_starts[doc + 1])]
            assert [ix.vocabulary[t] for t in terms.tolist()] == docs[doc]
    assert [h.doc for h in restored.top_k(["rare70000", "oil"], 1)] == [len(docs) - 1]


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="choose from okapi, l, plus"):
        BM25Params("bm42")


def test_gather_reads_the_same_ids_as_slicing_document_by_document_rare_ids_included():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, TermSequence.ESCAPE + 3000, 50_000)
    ids[rng.integers(0, len(ids), 200)] = TermSequence.ESCAPE           # the escape value itself is an id too
    sequence = TermSequence.encode(ids)
    starts = rng.integers(0, len(ids) - 100, 40)
    lengths = rng.integers(0, 100, 40)
    expected = np.concatenate([sequence[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist())]).astype(np.int64)
    assert np.array_equal(sequence.gather(starts, lengths), expected)
    assert np.array_equal(expected, np.concatenate([ids[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist())]))
    assert len(sequence.gather(starts[:0], lengths[:0])) == 0
