"""Answer quality, technique by technique, on every set: seed dev, SQuAD dev, RealTime QA news, BEIR SciFact
and the paraphrased questions of tests/test_search.py.

    python -m bench.ablation [--data ../shared/data] [--seed-qa ../shared/eval/seed_qa_dev.jsonl] [--grid]
                             [--sets seed,squad,rtqa,scifact,paraphrase] [--only TEXT]
    python -m bench.ablation --latency      # p50 search time at 118k passages, the product against before
                                            # article evidence

RealTime QA counts a hit at k when a top-k passage comes from a gold article (bench/realtimeqa.py), in
the first ten passages asked for as the product asks; SciFact's nDCG@10 ranks documents by their best
passage among the first 100 and is computed by ir-measures, as in `newsdesk eval`. The BEIR sets are
therefore searched twice per question (their ms/q counts both).

Each row switches one technique on top of the row before (and RM3 is tried on top of the product), so
the table shows what each step is worth. Passages come from the product's own build of each corpus;
the variants are assembled in memory from the same classes the product uses (Analyzer, BM25Index,
Searcher), so nothing here re-implements ranking. An abstention counts as a miss, as in `newsdesk eval`.

--grid instead compares the BM25 variants and parameters (passage text plus title and heading, no
expansion, re-ranking or abstention): the table behind the default in index/build.py.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.analysis import SentenceSplitter  # noqa: E402
from index.bm25 import BM25Index, BM25Params  # noqa: E402
from index.build import DEFAULT_PARAMS  # noqa: E402
from index.desk import Newsdesk  # noqa: E402
from index.evaluate import BeirSet, Question, load_beir, load_questions, normalize_for_match  # noqa: E402
from index.search import ARTICLE_PARAMS, ArticleEvidence, Searcher, SearchSettings, expansion_table  # noqa: E402
from index.vocabulary import Vocabulary, make_analyzer, mine_aliases  # noqa: E402

from bench.realtimeqa import convert  # noqa: E402

PLAIN = BM25Params(method="okapi", k1=1.2, b=0.75, epsilon=0.25)
OFF = SearchSettings(alias_weight=0.0, place_weight=0.0, min_coverage=0.0, proximity_weight=0.0)
PRODUCT = SearchSettings()
ARTICLES = ARTICLE_PARAMS


@dataclasses.dataclass(frozen=True)
class Step:
    label: str
    params: BM25Params = DEFAULT_PARAMS
    context: bool = True            # the title and section heading added to each passage
    irregular: bool = True          # the irregular-inflection table (led <-> lead)
    settings: SearchSettings = PRODUCT
    rm3: bool = False
    articles: BM25Params | None = None   # article-level evidence, with the article index's parameters


def _on(**changes) -> SearchSettings:
    return dataclasses.replace(OFF, **changes)


STEPS = [
    Step("plain BM25 (Okapi k1=1.2 b=0.75, Snowball)", PLAIN, False, False, OFF),
    Step("BM25+ k1=0.6 b=0.9 (no zero-weight terms)", context=False, irregular=False, settings=OFF),
    Step("+ title and section heading as context", irregular=False, settings=OFF),
    Step("+ proximity re-ranking (adjacent terms)", irregular=False, settings=_on(proximity_weight=PRODUCT.proximity_weight)),
    Step("+ corpus-mined aliases (PFG <-> Petroleum Facilities Guards)", irregular=False,
         settings=_on(proximity_weight=PRODUCT.proximity_weight, alias_weight=PRODUCT.alias_weight)),
    Step("+ country / demonym table (Emirati <-> UAE)", irregular=False, settings=dataclasses.replace(PRODUCT, min_coverage=0.0)),
    Step("+ irregular inflections (led <-> lead)", settings=dataclasses.replace(PRODUCT, min_coverage=0.0)),
    Step("+ abstention (one weak matched word -> no answer)"),
    Step("+ article evidence: candidates' articles scored, w=1, decay 0.5 when two articles tie = product",
         articles=ARTICLES),
    Step("product, article evidence decayed from a tie of 0.9 (tried, not kept)",
         settings=dataclasses.replace(PRODUCT, article_tie=0.9), articles=ARTICLES),
    Step("product, article evidence never decayed (tried, not kept)", settings=dataclasses.replace(PRODUCT, article_decay=1.0),
         articles=ARTICLES),
    Step("product, article evidence always decayed (tried, not kept)", settings=dataclasses.replace(PRODUCT, article_tie=0.0),
         articles=ARTICLES),
    Step("product, article evidence and proximity over the top 30 candidates (the depth before)",
         settings=dataclasses.replace(PRODUCT, rerank_depth=30), articles=ARTICLES),
    Step("product, article evidence and proximity over the top 100 candidates (tried, not kept)",
         settings=dataclasses.replace(PRODUCT, rerank_depth=100), articles=ARTICLES),
    Step("product + RM3 pseudo-relevance feedback (tried, not kept)", rm3=True, articles=ARTICLES),
]


def passages_of(db: Path) -> list[tuple[str, str, str, str | None, str]]:
    """(id, text, title, section, source) of the primary place of every passage, in index order."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            """SELECT p.id, p.text, a.title, o.section, a.source FROM passages p
               JOIN occurrences o ON o.passage_id = p.id JOIN articles a USING (source)
               ORDER BY p.id, a.published IS NULL, a.published, a.source, o.paragraph""").fetchall()
    seen, out = set(), []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out


_expansions: dict[tuple[int, bool], list] = {}


def searcher_for(rows, step: Step) -> Searcher:
    vocabulary = Vocabulary.load()
    if not step.irregular:
        vocabulary = dataclasses.replace(vocabulary, irregular=[])
    analyzer = make_analyzer(vocabulary)
    tokens = [analyzer.tokenize(text) for _id, text, _t, _s, _src in rows]
    titles = {}
    context = [titles.setdefault((title, section), analyzer.tokenize(f"{title}\n{section or ''}")) if step.context else []
               for _id, _text, title, section, _src in rows]
    index = BM25Index.build([t + c for t, c in zip(tokens, context)], step.params)
    key = (id(rows), step.irregular)
    if key not in _expansions:
        _expansions[key] = expansion_table(analyzer, mine_aliases([r[1] for r in rows]), vocabulary.places)
    articles = None
    if step.articles is not None:
        articles = article_evidence(index, [(r[4], r[2]) for r in rows], tokens, analyzer, step.articles)
    return Searcher(index, [r[0] for r in rows], analyzer, SentenceSplitter(), expansions=_expansions[key],
                    places=vocabulary.places, settings=step.settings, articles=articles)


def article_evidence(index: BM25Index, sources_titles, tokens, analyzer, params: BM25Params) -> ArticleEvidence:
    """Article evidence as the product's build makes it (index/build.py _compile), over rows in index order:
    each passage's own words (the first len(tokens[i]) of its document) and its article's title."""
    number: dict[str, int] = {}
    article_of = np.array([number.setdefault(source, len(number)) for source, _ in sources_titles], dtype=np.int32)
    titles = [np.zeros(0, dtype=np.int64)] * len(number)
    for source, title in dict(sources_titles).items():
        titles[number[source]] = np.array([index.term_ids[t] for t in analyzer.tokenize(title or "") if t in index.term_ids],
                                          dtype=np.int64)
    return ArticleEvidence.build(index, article_of, np.array([len(t) for t in tokens]), titles, params)


def rm3_search(searcher: Searcher, question: str, k: int, fb_docs: int = 10, fb_terms: int = 10,
               weight: float = 0.3):
    """RM3: add the terms most typical of the first results to the query, then search again."""
    first = searcher.search(question, k=fb_docs)
    if first.abstained or not first.hits:
        return first
    index = searcher.index
    scores = np.array([h.score for h in first.hits])
    prior = np.exp(scores - scores.max())
    prior /= prior.sum()
    model: Counter = Counter()
    for p, hit in zip(prior, first.hits):
        seq = index.sequence[index.doc_starts[hit.doc]:index.doc_starts[hit.doc + 1]]
        for t, c in Counter(seq.tolist()).items():
            model[t] += p * c / len(seq) * index.idf[t]
    asked = set(first.terms)
    extra = [index.vocabulary[t] for t, _ in model.most_common(fb_terms * 2) if index.vocabulary[t] not in asked][:fb_terms]
    weights, _ = searcher._weights(first.terms)
    for t in extra:
        weights[t] = weights.get(t, 0.0) + weight
    ranked = searcher._rank(weights, k, None)
    return dataclasses.replace(first, hits=[dataclasses.replace(first.hits[0], doc=d, passage_id=searcher.passage_ids[d], score=s)
                                            for d, s in ranked])


def _search(searcher: Searcher, question: str, k: int, rm3: bool):
    return rm3_search(searcher, question, k) if rm3 else searcher.search(question, k=k)


def evaluate(searcher: Searcher, questions, texts: dict[str, str], rm3: bool) -> dict:
    """Questions with expected substrings (seed dev, SQuAD, the paraphrases)."""
    ranks, started = [], time.perf_counter()
    for q in questions:
        result = _search(searcher, q.q, 10, rm3)
        wanted = [normalize_for_match(s) for s in q.any]
        ranks.append(next((i for i, h in enumerate(result.hits, 1) if any(w in texts[h.passage_id] for w in wanted)), None))
    n = len(questions)
    return {"hit@1": sum(r == 1 for r in ranks) / n, "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "hit@10": sum(r is not None and r <= 10 for r in ranks) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n, "ms": (time.perf_counter() - started) * 1000 / n}


def evaluate_beir(searcher: Searcher, data: BeirSet, doc_of_passage: dict[str, str], rm3: bool) -> dict:
    """A BEIR folder: hit@k over passages (one from a relevant document), nDCG@10 over documents."""
    import ir_measures

    run, ranks, started = {}, [], time.perf_counter()
    for qid, text in data.queries:
        relevant = {d for d, rel in data.qrels[qid].items() if rel > 0}
        # hit@k from the first ten, asked as the product asks (its re-ranking depth, not 100, then applies)
        first = _search(searcher, text, 10, rm3).hits
        ranks.append(next((i for i, h in enumerate(first, 1) if doc_of_passage[h.passage_id] in relevant), None))
        docs: dict[str, float] = {}
        for h in _search(searcher, text, 100, rm3).hits:
            docs.setdefault(doc_of_passage[h.passage_id], h.score)
        run[qid] = docs
    n = len(ranks)
    ndcg = ir_measures.calc_aggregate([ir_measures.nDCG @ 10], data.qrels, run)[ir_measures.nDCG @ 10]
    return {"hit@1": sum(r == 1 for r in ranks) / n, "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "hit@10": sum(r is not None and r <= 10 for r in ranks) / n, "ndcg@10": ndcg,
            "ms": (time.perf_counter() - started) * 1000 / n}


async def built(corpus: Path, db: Path) -> None:
    desk = await Newsdesk.open(db, corpus)
    await desk.close()


# (set, metric) columns of the table
COLUMNS = [("seed", "hit@1", "seed dev hit@1"), ("squad", "hit@1", "SQuAD hit@1"), ("squad", "hit@5", "SQuAD hit@5"),
           ("rtqa", "hit@1", "RealTime QA hit@1"), ("rtqa", "hit@10", "RealTime QA hit@10"),
           ("scifact", "ndcg@10", "SciFact nDCG@10"), ("paraphrase", "hit@1", "paraphrases hit@1"),
           ("squad", "ms", "SQuAD ms/q"), ("rtqa", "ms", "RealTime QA ms/q")]


def prepare(args, tmp: Path) -> dict:
    """Each set built by the product into a temp database, then read back as rows."""
    from tests.test_search import QUESTIONS

    squad = args.data / "squad_v1.1_dev"
    prepared = {}
    for name in args.sets:
        if name in ("seed", "paraphrase"):
            corpus = ROOT / "corpus"
        elif name == "squad":
            corpus = squad / "corpus.jsonl"
        elif name == "rtqa":
            convert(args.data / "external" / "realtimeqa_news", tmp / "rtqa")
            beir = load_beir(tmp / "rtqa")
            corpus = beir.corpus
        else:
            beir = load_beir(args.data / "external" / "beir_scifact")
            corpus = beir.corpus
        db = tmp / f"{name}.db"
        asyncio.run(built(corpus, db))
        rows = passages_of(db)
        if name in ("rtqa", "scifact"):
            doc_of = {r[0]: beir.doc_of_article.get(r[4].rsplit("#", 1)[-1], "") for r in rows}
            prepared[name] = (rows, beir, doc_of)
        else:
            questions = (load_questions(args.seed_qa) if name == "seed" else
                         load_questions(squad / "questions.jsonl") if name == "squad" else
                         [Question(q, tuple(expected)) for q, expected, _ in QUESTIONS])
            prepared[name] = (rows, questions, {r[0]: normalize_for_match(r[1]) for r in rows})
    return prepared


def measure(prepared: dict, step: Step) -> dict:
    row = {}
    for name, (rows, data, extra) in prepared.items():
        searcher = searcher_for(rows, step)
        row[name] = (evaluate_beir(searcher, data, extra, step.rm3) if isinstance(data, BeirSet)
                     else evaluate(searcher, data, extra, step.rm3))
    return row


def latency(data: Path, questions: int = 1000, k: int = 5) -> None:
    """p50 / p95 search time at 118k passages (SQuAD + BBC + Reuters, bench/data.py): the product against the
    product before article evidence (no article evidence, 30 candidates re-ordered, proximity reading each
    candidate on its own: bench/proximity_before.py), over the same index and questions in one process.
    The 1.5x budget is a ratio, so both sides are measured, in alternating blocks of 25 questions."""
    from bench import data as bench_data
    from bench import proximity_before
    from index import search

    vocabulary = Vocabulary.load()
    analyzer = make_analyzer(vocabulary)
    paragraphs = [p for part in bench_data.load_all(data).values() for p in part]
    tokens = [analyzer.tokenize(text) for _id, _title, text in paragraphs]
    titles: dict[str, list[str]] = {}
    index = BM25Index.build([t + titles.setdefault(title, analyzer.tokenize(title)) for t, (_i, title, _x) in zip(tokens, paragraphs)],
                            DEFAULT_PARAMS)
    articles = article_evidence(index, [(pid.rsplit("/", 1)[0], title) for pid, title, _x in paragraphs], tokens,
                                analyzer, ARTICLES)
    asked = [q["q"] for q in bench_data.sample_questions(bench_data.load_questions(data), questions)]
    print(f"{len(paragraphs):,} passages, {len(articles.lengths):,} articles, {len(asked)} SQuAD questions, k={k}; "
          f"arrays: passage index {index.nbytes / 1e6:.0f} MB, article evidence {articles.nbytes / 1e6:.1f} MB")
    ids = [p[0] for p in paragraphs]
    runs = {"before article evidence": (Searcher(index, ids, analyzer, SentenceSplitter(),
                                                 settings=dataclasses.replace(PRODUCT, rerank_depth=30)),
                                        proximity_before.adjacency_bonus),
            "product": (Searcher(index, ids, analyzer, SentenceSplitter(), articles=articles), search.adjacency_bonus)}
    times: dict[str, list[float]] = {label: [] for label in runs}
    try:
        for q in asked[:50]:
            for searcher, bonus in runs.values():
                search.adjacency_bonus = bonus
                searcher.search(q, k=k)              # warm caches before timing
        for start in range(0, len(asked), 25):
            for label, (searcher, bonus) in runs.items():
                search.adjacency_bonus = bonus
                for q in asked[start:start + 25]:
                    started = time.perf_counter()
                    searcher.search(q, k=k)
                    times[label].append((time.perf_counter() - started) * 1000)
    finally:
        search.adjacency_bonus = runs["product"][1]
    p50 = {label: float(np.percentile(t, 50)) for label, t in times.items()}
    for label, t in times.items():
        print(f"{label}: p50 {p50[label]:.2f} ms, p95 {np.percentile(t, 95):.2f} ms")
    print(f"p50 ratio product / before: {p50['product'] / p50['before article evidence']:.2f}x (the budget is 1.5x)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed-qa", type=Path, default=ROOT.parent / "shared" / "eval" / "seed_qa_dev.jsonl")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--grid", action="store_true", help="compare BM25 variants and parameters instead")
    parser.add_argument("--sets", type=lambda v: v.split(","), default=["seed", "squad", "rtqa", "scifact", "paraphrase"])
    parser.add_argument("--only", help="only the rows whose label contains this text")
    parser.add_argument("--latency", action="store_true", help="p50 search time at 118k, the product against before")
    args = parser.parse_args(argv)
    if args.latency:
        latency(args.data)
        return 0
    steps = STEPS
    if args.grid:
        steps = [Step(f"{m} k1={k1} b={b}", BM25Params(method=m, k1=k1, b=b, delta=1.0 if m == "plus" else 0.5),
                      irregular=False, settings=OFF)
                 for m in ("okapi", "plus", "l") for k1 in (0.6, 0.9, 1.2, 1.5) for b in (0.5, 0.75, 0.9)]
    if args.only:
        steps = [s for s in steps if args.only in s.label]
    columns = [c for c in COLUMNS if c[0] in args.sets]
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(args, Path(tmp))
        print(f"| technique | {' | '.join(c[2] for c in columns)} |")
        print("|---|" + "---|" * len(columns))
        for step in steps:
            row = measure(prepared, step)
            table.append({"technique": step.label, **row})
            cells = [f"{row[name][metric]:.2f}" if metric == "ms" else f"{row[name][metric]:.3f}" for name, metric, _ in columns]
            print(f"| {step.label} | {' | '.join(cells)} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
