"""Answer quality, technique by technique: hit@1 / hit@5 / MRR@10 on the seed dev set and SQuAD dev.

    python -m bench.ablation [--data ../shared/data] [--seed-qa ../shared/eval/seed_qa_dev.jsonl] [--grid]

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
from index.evaluate import load_questions, normalize_for_match  # noqa: E402
from index.search import Searcher, SearchSettings, expansion_table  # noqa: E402
from index.vocabulary import Vocabulary, make_analyzer, mine_aliases  # noqa: E402

PLAIN = BM25Params(method="okapi", k1=1.2, b=0.75, epsilon=0.25)
OFF = SearchSettings(alias_weight=0.0, place_weight=0.0, min_coverage=0.0, proximity_weight=0.0)

# (label, BM25 params, index titles/headings, irregular table, search settings, rm3)
STEPS = [
    ("plain BM25 (Okapi k1=1.2 b=0.75, Snowball)", PLAIN, False, False, OFF, False),
    ("BM25+ k1=0.6 b=0.9 (no zero-weight terms)", DEFAULT_PARAMS, False, False, OFF, False),
    ("+ title and section heading as context", DEFAULT_PARAMS, True, False, OFF, False),
    ("+ proximity re-ranking (adjacent terms)", DEFAULT_PARAMS, True, False,
     dataclasses.replace(OFF, proximity_weight=SearchSettings.proximity_weight), False),
    ("+ corpus-mined aliases (PFG <-> Petroleum Facilities Guards)", DEFAULT_PARAMS, True, False,
     dataclasses.replace(OFF, proximity_weight=SearchSettings.proximity_weight, alias_weight=SearchSettings.alias_weight), False),
    ("+ country / demonym table (Emirati <-> UAE)", DEFAULT_PARAMS, True, False,
     dataclasses.replace(SearchSettings(), min_coverage=0.0), False),
    ("+ irregular inflections (led <-> lead)", DEFAULT_PARAMS, True, True,
     dataclasses.replace(SearchSettings(), min_coverage=0.0), False),
    ("+ abstention (one weak matched word -> no answer) = product", DEFAULT_PARAMS, True, True, SearchSettings(), False),
    ("product + RM3 pseudo-relevance feedback (tried, not kept)", DEFAULT_PARAMS, True, True, SearchSettings(), True),
]


def passages_of(db: Path) -> list[tuple[str, str, str, str | None]]:
    """(id, text, title, section) of the primary place of every passage, in index order."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            """SELECT p.id, p.text, a.title, o.section FROM passages p
               JOIN occurrences o ON o.passage_id = p.id JOIN articles a USING (source)
               ORDER BY p.id, a.published IS NULL, a.published, a.source, o.paragraph""").fetchall()
    seen, out = set(), []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out


def searcher_for(rows, params, context: bool, irregular: bool, settings: SearchSettings) -> Searcher:
    vocabulary = Vocabulary.load()
    if not irregular:
        vocabulary = dataclasses.replace(vocabulary, irregular=[])
    analyzer = make_analyzer(vocabulary)
    tokens = [analyzer.tokenize(text) + (analyzer.tokenize(f"{title}\n{section or ''}") if context else [])
              for _id, text, title, section in rows]
    index = BM25Index.build(tokens, params)
    texts = [text for _id, text, _t, _s in rows]
    return Searcher(index, [r[0] for r in rows], analyzer, SentenceSplitter(),
                    expansions=expansion_table(analyzer, mine_aliases(texts), vocabulary.places),
                    places=vocabulary.places, settings=settings)


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


def evaluate(searcher: Searcher, questions, texts: dict[str, str], rm3: bool) -> dict:
    ranks, started = [], time.perf_counter()
    for q in questions:
        result = rm3_search(searcher, q.q, 10) if rm3 else searcher.search(q.q, k=10)
        wanted = [normalize_for_match(s) for s in q.any]
        ranks.append(next((i for i, h in enumerate(result.hits, 1) if any(w in texts[h.passage_id] for w in wanted)), None))
    n = len(questions)
    return {"hit@1": sum(r == 1 for r in ranks) / n, "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n, "ms": (time.perf_counter() - started) * 1000 / n}


async def built(corpus: Path, db: Path) -> None:
    desk = await Newsdesk.open(db, corpus)
    await desk.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed-qa", type=Path, default=ROOT.parent / "shared" / "eval" / "seed_qa_dev.jsonl")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--grid", action="store_true", help="compare BM25 variants and parameters instead")
    args = parser.parse_args(argv)
    squad = args.data / "squad_v1.1_dev"
    sets = {"seed dev": (ROOT / "corpus", args.seed_qa), "SQuAD dev": (squad / "corpus.jsonl", squad / "questions.jsonl")}
    prepared = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (corpus, qa) in sets.items():
            db = Path(tmp) / f"{name.split()[0]}.db"
            asyncio.run(built(corpus, db))
            rows = passages_of(db)
            prepared[name] = (rows, load_questions(qa), {r[0]: normalize_for_match(r[1]) for r in rows})
    steps = STEPS
    if args.grid:
        steps = [(f"{m} k1={k1} b={b}", BM25Params(method=m, k1=k1, b=b, delta=1.0 if m == "plus" else 0.5),
                  True, False, OFF, False)
                 for m in ("okapi", "plus", "l") for k1 in (0.6, 0.9, 1.2, 1.5) for b in (0.5, 0.75, 0.9)]
    table = []
    print(f"| technique | {' | '.join(f'{n} hit@1 | hit@5' for n in sets)} | SQuAD MRR@10 | SQuAD ms/q |")
    print("|---|" + "---|" * (2 * len(sets) + 2))
    for label, params, context, irregular, settings, rm3 in steps:
        row = {"technique": label}
        cells = []
        for name, (rows, questions, texts) in prepared.items():
            metrics = evaluate(searcher_for(rows, params, context, irregular, settings), questions, texts, rm3)
            row[name] = metrics
            cells += [f"{metrics['hit@1']:.3f}", f"{metrics['hit@5']:.3f}"]
        table.append(row)
        print(f"| {label} | {' | '.join(cells)} | {row['SQuAD dev']['mrr@10']:.3f} | {row['SQuAD dev']['ms']:.2f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
