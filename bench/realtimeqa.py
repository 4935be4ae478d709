"""RealTime QA news (../shared/data/external/realtimeqa_news) as a BEIR folder, for `newsdesk eval`.

    python -m bench.realtimeqa OUT_DIR [--data ../shared/data]

Writes OUT_DIR/corpus.jsonl (one article a line: _id = URL, title, text with its blank-line paragraphs,
url, published), queries.jsonl (the quiz question alone, as the references used it) and qrels/test.tsv
(each question's gold articles). The data stays out of the repository: write OUT_DIR somewhere temporary.
`newsdesk eval OUT_DIR` then reports hit@k as "a top-k passage comes from a gold article".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def convert(source: Path, out: Path) -> tuple[int, int]:
    """(articles, questions) written from the RealTime QA folder `source` into the BEIR folder `out`."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    articles = 0
    with (source / "corpus.jsonl").open(encoding="utf-8") as src, (out / "corpus.jsonl").open("w", encoding="utf-8") as dst:
        for line in src:
            if not line.strip():
                continue
            r = json.loads(line)
            dst.write(json.dumps({"_id": r["_id"], "title": r.get("title") or "", "text": r["text"], "url": r.get("url"),
                                  "published": r.get("publish_date")}, ensure_ascii=False) + "\n")
            articles += 1
    questions = [json.loads(line) for line in (source / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    with (out / "queries.jsonl").open("w", encoding="utf-8") as q, (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as rel:
        rel.write("query-id\tcorpus-id\tscore\n")
        for r in questions:
            q.write(json.dumps({"_id": r["qid"], "text": r["question"]}, ensure_ascii=False) + "\n")
            for url in r["gold_urls"]:
                rel.write(f"{r['qid']}\t{url}\t1\n")
    return articles, len(questions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    articles, questions = convert(args.data / "external" / "realtimeqa_news", args.out)
    print(f"{args.out}: {articles} articles, {questions} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
