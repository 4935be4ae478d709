"""The `newsdesk` command: a thin layer over index.desk, printing what the bot would post."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from .errors import NewsdeskError

__all__ = ("main",)

_log = logging.getLogger(__name__)

EXAMPLES = """examples:
  newsdesk ask "which countries bombed the PFG?"
  newsdesk ask "who leads the LNA?" -k 3 --json
  newsdesk cite abc1234
  newsdesk index build --corpus ./articles
  newsdesk eval questions.jsonl --corpus corpus.jsonl
  newsdesk run                      # the Discord bot (DISCORD_TOKEN in the environment or .env)
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command not in ("run", "sync"):   # the bot sets up discord.py's own logging
        logging.basicConfig(level=logging.WARNING if not args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if args.command is None or (args.command == "index" and args.index_command is None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except NewsdeskError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # `newsdesk ask ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsdesk", description="Ask a news corpus; get verbatim quotes with sources.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler, help: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=f"{help}\n\nexample:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    ask = add("ask", _ask, "Answer a question with quoted passages and their sources.",
              'newsdesk ask "which countries bombed the PFG?" -k 3')
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("-k", type=_positive, default=5, help="how many passages (default 5)")
    ask.add_argument("--source", help="only passages from this article (its path, as `newsdesk cite` shows)")
    ask.add_argument("--json", action="store_true", help="print JSON instead of text")
    _storage_options(ask)

    cite = add("cite", _cite, "Show one passage by its ID, with every article it appears in.", "newsdesk cite abc1234")
    cite.add_argument("id", help="the passage ID shown in an answer")
    cite.add_argument("--json", action="store_true", help="print JSON instead of text")
    _storage_options(cite)

    index = sub.add_parser("index", help="Build or inspect the index.")
    index_sub = index.add_subparsers(dest="index_command", metavar="SUBCOMMAND")
    build = index_sub.add_parser("build", help="Index the corpus (incremental: unchanged files are not re-read).",
                                 description="Index the corpus (incremental: unchanged files are not re-read).\n\n"
                                             "example:\n  newsdesk index build --corpus ./articles",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    build.set_defaults(handler=_build)
    build.add_argument("--json", action="store_true", help="print the build report as JSON")
    _storage_options(build)

    ev = add("eval", _eval, "Measure retrieval: hit@1/3/5/20, MRR@10 and latency over a question file.",
             "newsdesk eval questions.jsonl --corpus corpus.jsonl")
    ev.add_argument("questions", type=Path, help='JSON lines: {"q": question, "any": [expected substring, ...]}')
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument("--misses", type=int, default=0, metavar="N", help="also list the first N questions missed at 1")
    _storage_options(ev)

    run = add("run", _run, "Run the Discord bot (token from DISCORD_TOKEN or .env).", "newsdesk run")
    _storage_options(run)
    sync = add("sync", _sync, "Publish the bot's slash commands to Discord (after changing them).",
               "newsdesk sync --guild 123456789012345678")
    sync.add_argument("--guild", type=int, help="publish to one server only (instant; for development)")
    return parser


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, help="folder (or single file) of articles; default: the shipped corpus")
    parser.add_argument("--db", type=Path, help="SQLite database; default: one per corpus in ~/.local/share/newsdesk")


def _positive(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return number


def _resolve(args: argparse.Namespace) -> tuple[Path, Path]:
    from .desk import default_corpus, default_db

    corpus = (args.corpus or default_corpus()).resolve()
    if args.db:
        return args.db, corpus
    if os.environ.get("NEWSDESK_DB") or args.corpus is None:
        return default_db(), corpus
    # Another corpus gets its own database, so trying one never overwrites the default index.
    digest = hashlib.sha256(str(corpus).encode()).hexdigest()[:8]
    return default_db().with_name(f"{corpus.stem}-{digest}.db"), corpus


async def _open(args: argparse.Namespace):
    from .desk import Newsdesk

    db, corpus = _resolve(args)
    progress = _ProgressBar()
    desk = await Newsdesk.open(db, corpus, progress=progress)
    progress.finish()
    for notice in desk.notices:
        print(notice, file=sys.stderr)
    if args.corpus and desk.build and Path(desk.build.corpus) != corpus:
        print(f"The database holds {desk.build.corpus}; indexing {corpus}.", file=sys.stderr)
        try:
            report = await desk.rebuild(progress, corpus)
        except BaseException:
            await desk.close()
            raise
        progress.finish()
        print(report.summary(), file=sys.stderr)
    return desk


def _ask(args: argparse.Namespace) -> int:
    from .render import answer_markdown, answer_to_dict, to_terminal

    async def go() -> int:
        desk = await _open(args)
        async with desk:
            answer = await desk.ask(args.question, k=args.k, source=args.source)
        if args.json:
            print(json.dumps(answer_to_dict(answer), ensure_ascii=False, indent=2))
        else:
            print(to_terminal(answer_markdown(answer, escape=False), color=sys.stdout.isatty()))
        return 0

    return asyncio.run(go())


def _cite(args: argparse.Namespace) -> int:
    from .render import citation_line

    async def go() -> int:
        desk = await _open(args)
        async with desk:
            record = await desk.cite(args.id)
        if args.json:
            print(json.dumps({"id": record.id, "text": record.text, "places": [
                {"title": p.article.title, "path": p.article.source, "paragraph": p.paragraph, "part": p.part,
                 "url": p.article.url, "outlet": p.article.outlet, "published": p.article.published}
                for p in record.places]}, ensure_ascii=False, indent=2))
        else:
            print("> " + record.text + "\n" + citation_line(record, escape=False, also_in_limit=100))
        return 0

    return asyncio.run(go())


def _build(args: argparse.Namespace) -> int:
    from .desk import Newsdesk

    async def go() -> int:
        db, corpus = _resolve(args)
        progress = _ProgressBar()
        desk = await Newsdesk.open(db, corpus, load=False)
        async with desk:
            for notice in desk.notices:
                print(notice, file=sys.stderr)
            report = await desk.rebuild(progress, corpus)
            progress.finish()
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
        return 0

    return asyncio.run(go())


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, load_questions

    async def go() -> int:
        questions = load_questions(args.questions)
        desk = await _open(args)
        async with desk:
            report = await evaluate(desk, questions)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(f"{args.questions}: {report.questions} questions, {desk.build.passages} passages")
            print(report.table())
        for miss in report.misses[: args.misses]:
            print(json.dumps(miss, ensure_ascii=False), file=sys.stderr)
        return 0

    return asyncio.run(go())


def _run(args: argparse.Namespace) -> int:
    from bot.__main__ import main as run_bot  # imported here so `index` works without discord.py

    db, corpus = _resolve(args)
    return run_bot(corpus=corpus if args.corpus else None, db=db if (args.db or args.corpus) else None)


def _sync(args: argparse.Namespace) -> int:
    from bot.__main__ import sync_commands

    return sync_commands(args.guild)


class _ProgressBar:
    """Build progress on a terminal's stderr; called from worker threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tty = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            now = time.monotonic()
            if not self._tty or (stage == self._stage and now - self._last < 0.1 and done < total):
                return   # a log or a pipe gets the notices and the report, not a bar
            self._last, self._shown, self._stage = now, True, stage
            width = 30
            filled = int(width * done / total) if total else width
            sys.stderr.write(f"\r{stage:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  ")
            sys.stderr.flush()

    def finish(self) -> None:
        with self._lock:
            if self._shown and self._tty:
                sys.stderr.write("\n")
            self._shown = False
