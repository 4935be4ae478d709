"""The `newsdesk` command: a thin layer over index.desk.Newsdesk, printing what the bot would post."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import BuildInterrupted, NewsdeskError

__all__ = ("main",)

_log = logging.getLogger(__name__)

EXAMPLES = """examples:
  newsdesk ask "which countries bombed the PFG?"
  newsdesk ask "who leads the LNA?" -k 3 --json
  newsdesk cite abc1234
  newsdesk index build --corpus ./articles
  newsdesk index repair
  newsdesk eval questions.jsonl --corpus corpus.jsonl
  newsdesk feeds add https://example.com/rss.xml --corpus ./articles
  newsdesk fetch --corpus ./articles        # poll the feeds, add the new articles, rebuild
  newsdesk add https://example.com/news/story.html --corpus ./articles
  newsdesk cluster up ./cluster --shards 2 --replicas 2   # a local Sphinx/Manticore cluster
  newsdesk index build --search sphinx://127.0.0.1:9306   # the index into that cluster
  newsdesk run                      # the Discord bot (DISCORD_TOKEN in the environment or .env)

settings: --db and --corpus, else $NEWSDESK_DB and $NEWSDESK_CORPUS (environment or ./.env), else
~/.local/share/newsdesk/newsdesk.db and the shipped articles; another --corpus gets its own database.

exit status: 0 done, 1 error, 2 usage or database unusable, 3 database path is a folder, 4 not a
regular file, 5 under a file, 6 permission denied, 7 locked by another process, 8 damaged, 130 interrupted.
"""

# A signal during a build: the transaction rolls back at the build's next check; if a long step keeps it
# busy past this, the process exits anyway (SQLite discards an uncommitted transaction on its own).
HARD_EXIT_AFTER_S = 1.5
INTERRUPTED = "Interrupted: the rebuild was rolled back; the previous index is unchanged."


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command not in ("run", "sync"):   # the bot sets up discord.py's own logging
        logging.basicConfig(level=logging.WARNING if not args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    if args.command is None or (args.command in ("index", "feeds", "cluster") and getattr(args, f"{args.command}_command") is None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except NewsdeskError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # `newsdesk ask ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _version() -> str:
    try:
        return metadata.version("newsdesk")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsdesk", description="Ask a news corpus; get verbatim quotes with sources.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action="version", version=f"newsdesk {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(group: Any, name: str, handler: Callable[[argparse.Namespace], int], help: str,
            example: str) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help, description=f"{help}\n\nexample:\n  {example}",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    def group(name: str, help: str, description: str, example: str) -> Any:
        """A command with subcommands (index, feeds, cluster): its parser's subparsers."""
        p = sub.add_parser(name, help=help, description=f"{description}\n\nexample:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        return p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")

    ask = add(sub, "ask", _ask, "Answer a question with quoted passages and their sources.",
              'newsdesk ask "which countries bombed the PFG?" -k 3')
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("-k", type=_positive, default=5, metavar="N", help="how many passages, 1 to 100 (default 5)")
    ask.add_argument("--source", metavar="PATH", help="only passages from this article (its path, as `--json` shows it)")
    ask.add_argument("--json", action="store_true", help="print JSON instead of text")
    _storage_options(ask)

    cite = add(sub, "cite", _cite, "Show one passage by its ID, with every article it appears in.", "newsdesk cite abc1234")
    cite.add_argument("id", help="the passage ID shown in an answer")
    cite.add_argument("--json", action="store_true", help="print JSON instead of text")
    _storage_options(cite)

    index_sub = group("index", "Build, update or repair the index.", "Build, update or repair the index.",
                      "newsdesk index build")
    build = add(index_sub, "build", _build,
                "Index the corpus (incremental: unchanged files are not re-read). Ctrl-C rolls it back.",
                "newsdesk index build --corpus ./articles")
    build.add_argument("--json", action="store_true", help="print the build report as JSON")
    _storage_options(build)
    merge = add(index_sub, "merge", _merge,
                "Compile the whole index, merging the delta segment that small builds write (the bot does it in "
                "the background when the delta grows). Ctrl-C rolls it back.", "newsdesk index merge")
    merge.add_argument("--json", action="store_true", help="print the build report as JSON")
    _storage_options(merge)
    repair = add(index_sub, "repair", _repair,
                 "Check the database with SQLite's integrity check; if it is damaged, keep it aside, rebuild the "
                 "index into a new file and carry over votes and build records.", "newsdesk index repair")
    repair.add_argument("--json", action="store_true", help="print the report as JSON")
    _storage_options(repair)

    ev = add(sub, "eval", _eval, "Measure retrieval: hit@1/3/5/20, MRR@10 and latency over a question file; "
             "nDCG@10 and recall@100 too over a BEIR folder.", "newsdesk eval questions.jsonl --corpus corpus.jsonl")
    ev.add_argument("questions", type=Path, help='JSON lines: {"q": question, "any": [expected substring, ...]}; '
                    "or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv; needs pip install 'newsdesk[eval]')")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument("--misses", type=int, default=0, metavar="N", help="also list the first N questions missed at 1")
    _storage_options(ev)

    feeds_sub = group("feeds", "The news feeds (RSS, Atom) that `newsdesk fetch` polls.",
                      "The news feeds (RSS, Atom) that `newsdesk fetch` polls, kept in <corpus>/.newsdesk/feeds.json.",
                      "newsdesk feeds list")
    feed_add = add(feeds_sub, "add", _feeds_add, "Add a feed (checked: it must serve RSS or Atom).",
                   "newsdesk feeds add https://example.com/rss.xml --corpus ./articles")
    feed_add.add_argument("url", help="the feed's http(s) URL")
    _storage_options(feed_add)
    feed_list = add(feeds_sub, "list", _feeds_list, "List the feeds, with what each answered last.",
                    "newsdesk feeds list --corpus ./articles")
    _storage_options(feed_list)
    feed_remove = add(feeds_sub, "remove", _feeds_remove, "Remove a feed (its articles stay in the corpus).",
                      "newsdesk feeds remove https://example.com/rss.xml --corpus ./articles")
    feed_remove.add_argument("url", help="the feed's URL as `feeds list` shows it")
    _storage_options(feed_remove)

    fetch = add(sub, "fetch", _fetch, "Poll every feed once, add the new articles to the corpus and rebuild the "
                "index; report what was added and what was skipped, and why.", "newsdesk fetch --corpus ./articles")
    _storage_options(fetch)
    add_one = add(sub, "add", _add, "Add one article: a URL (fetched, extracted) or a .txt/.md/.html/.jsonl file "
                  "(copied into the corpus); then rebuild and show a preview.",
                  "newsdesk add https://example.com/news/story.html --corpus ./articles")
    add_one.add_argument("source", metavar="URL_OR_FILE", help="an http(s) URL or the path of an article file")
    _storage_options(add_one)

    cluster_sub = group("cluster", "A local search cluster (Sphinx or Manticore searchd) for development.",
                        "A local search cluster: shards x replicas of searchd plus an aggregator, on loopback ports.",
                        "newsdesk cluster up ./cluster --shards 2 --replicas 2")
    cluster_up = add(cluster_sub, "up", _cluster_up, "Write the configs, start every searchd, wait until they answer, "
                     "and print NEWSDESK_SEARCH=sphinx://127.0.0.1:PORT.", "newsdesk cluster up ./cluster --shards 2 --replicas 2")
    cluster_up.add_argument("dir", type=Path, help="folder for configs, data, logs and PID files")
    cluster_up.add_argument("--shards", type=_positive, default=2, metavar="N", help="shards (default 2)")
    cluster_up.add_argument("--replicas", type=_positive, default=2, metavar="R", help="mirrors of each shard (default 2)")
    cluster_up.add_argument("--base-port", type=int, metavar="P", help="first port (default: free ports)")
    cluster_down = add(cluster_sub, "down", _cluster_down, "Stop every searchd of the cluster by its PID.",
                       "newsdesk cluster down ./cluster")
    cluster_down.add_argument("dir", type=Path, help="the folder given to `cluster up`")
    cluster_status = add(cluster_sub, "status", _cluster_status, "Show each node: ports, PID, up or down, rows held.",
                         "newsdesk cluster status ./cluster")
    cluster_status.add_argument("dir", type=Path, help="the folder given to `cluster up`")
    cluster_status.add_argument("--json", action="store_true", help="print JSON instead of text")

    run = add(sub, "run", _run, "Run the Discord bot (token from DISCORD_TOKEN or .env).", "newsdesk run")
    _storage_options(run)
    sync = add(sub, "sync", _sync, "Publish the bot's slash commands to Discord (after changing them).",
               "newsdesk sync --guild 123456789012345678")
    sync.add_argument("--guild", type=int, help="publish to one server only (instant; for development)")
    return parser


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, metavar="PATH",
                        help="folder (or single file) of articles; default: $NEWSDESK_CORPUS, else the shipped corpus")
    parser.add_argument("--db", type=Path, metavar="PATH",
                        help="SQLite database; default: $NEWSDESK_DB, else one per corpus in ~/.local/share/newsdesk")
    parser.add_argument("--search", metavar="URL",
                        help="where passages are searched: `embedded` (default) or a search cluster, "
                             "sphinx://HOST:PORT; default: $NEWSDESK_SEARCH")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100, not {value!r}") from None
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return number


def _settings(args: argparse.Namespace):
    from .config import Settings

    return Settings.resolve(corpus=args.corpus, db=args.db, search=getattr(args, "search", None))


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _open(args: argparse.Namespace):
    from .desk import Newsdesk

    progress = _ProgressBar()
    desk = await Newsdesk.open(_settings(args), progress=progress, on_wait=_say)
    progress.finish()
    for notice in desk.notices:
        _say(notice)
    return desk


def _ask(args: argparse.Namespace) -> int:
    from .render import answer_markdown, answer_to_dict, to_terminal

    async def go() -> int:
        desk = await _open(args)
        async with desk:
            answer = await desk.ask(args.question, k=args.k, source=args.source)
        partial = answer.search.partial_shards
        if args.json:
            shape = answer_to_dict(answer)
            if partial:
                shape.update(partial=True, missing_shards=list(partial))
            print(json.dumps(shape, ensure_ascii=False, indent=2))
        else:
            print(to_terminal(answer_markdown(answer, escape=False), color=sys.stdout.isatty()))
            if partial:
                print(_partial_line(partial))
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
    async def job(desk, progress, cancel):
        return await desk.rebuild(progress, cancel, on_wait=_say)

    return _write_command(args, job)


def _merge(args: argparse.Namespace) -> int:
    async def job(desk, progress, cancel):
        return await desk.merge(progress, cancel, on_wait=_say)

    return _write_command(args, job)


def _repair(args: argparse.Namespace) -> int:
    async def job(desk, progress, cancel):
        report = await desk.repair(progress, cancel, on_wait=_say)
        if report is None:
            print(f"{desk.db} passed SQLite's integrity check; nothing to repair.")
        return report

    return _write_command(args, job)


def _write_command(args: argparse.Namespace, job) -> int:
    """Run a build-like job; SIGINT or SIGTERM roll it back and exit within about two seconds."""
    from .build import Cancellation
    from .desk import Newsdesk

    async def go() -> int:
        loop = asyncio.get_running_loop()
        cancel = Cancellation()
        progress = _ProgressBar()

        def stop(sig: signal.Signals) -> None:
            cancel.cancel()
            code = 128 + sig
            # The build thread holds the only reference to what it must roll back; a step that does not
            # check in time is cut short: SQLite never applies an uncommitted transaction.
            timer = threading.Timer(HARD_EXIT_AFTER_S, _hard_exit, (code,))
            timer.daemon = True
            timer.start()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        desk = await Newsdesk.open(_settings(args), load=False)
        async with desk:
            try:
                report = await job(desk, progress, cancel)
            except BuildInterrupted:
                progress.finish()
                _say(INTERRUPTED)
                return 130
            progress.finish()
        if report is not None:
            print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
        return 0

    return asyncio.run(go())


def _hard_exit(code: int) -> None:
    _say(INTERRUPTED)
    os._exit(code)


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, evaluate_beir, is_beir, load_beir, load_questions

    async def go() -> int:
        # A BEIR folder brings its own corpus (corpus.jsonl) unless --corpus says otherwise.
        beir = load_beir(args.questions) if is_beir(args.questions) else None
        questions = [] if beir else load_questions(args.questions)
        if beir and args.corpus is None:
            args.corpus = beir.corpus
        desk = await _open(args)
        async with desk:
            report = await (evaluate_beir(desk, beir) if beir else evaluate(desk, questions))
            passages = desk.build.passages if desk.build else 0
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(f"{args.questions}: {report.questions} questions, {passages} passages")
            print(report.table())
        for miss in report.misses[: args.misses]:
            print(json.dumps(miss, ensure_ascii=False), file=sys.stderr)
        return 0

    return asyncio.run(go())


async def _unloaded(args: argparse.Namespace):
    from .desk import Newsdesk

    return await Newsdesk.open(_settings(args), load=False)


def _feeds_add(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await _unloaded(args) as desk:
            feed, items = await desk.add_feed(args.url)
        print(f"Added feed {feed.url}: {feed.title or 'untitled'} ({items} items).")
        print("`newsdesk fetch` fetches its articles.")
        return 0

    return asyncio.run(go())


def _feeds_list(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await _unloaded(args) as desk:
            feeds = await desk.feeds()
        if not feeds:
            print("No feeds. Add one with: newsdesk feeds add URL")
        for feed in feeds:
            last = f"last polled {feed.last_polled}: {feed.last_result}" if feed.last_polled else "not polled yet"
            print(f"{feed.url}  {feed.title or 'untitled'}  ({last})")
        return 0

    return asyncio.run(go())


def _feeds_remove(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await _unloaded(args) as desk:
            feed = await desk.remove_feed(args.url)
        print(f"Removed feed {feed.url}; its articles stay in the corpus.")
        return 0

    return asyncio.run(go())


def _fetch(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await _unloaded(args) as desk:   # the corpus may hold nothing yet: no build first
            report = await desk.fetch(progress=_ProgressBar())
        print(report.summary())
        return 0

    return asyncio.run(go())


def _add(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await _unloaded(args) as desk:
            added, build = await desk.add(args.source, progress=_ProgressBar())
        print(added.preview())
        print(build.summary())
        return 0

    return asyncio.run(go())


def _partial_line(shards: Sequence[int]) -> str:
    names = ", ".join(str(s) for s in shards)
    return f"Partial answer: shard {names} of the search cluster did not answer; its passages are missing."


def _cluster_up(args: argparse.Namespace) -> int:
    from .cluster import up

    layout = up(args.dir, args.shards, args.replicas, args.base_port)
    print(f"NEWSDESK_SEARCH={layout.url}")
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    from .cluster import down

    stopped = down(args.dir)
    print(f"Stopped {len(stopped)} searchd: {', '.join(stopped)}." if stopped else "Nothing was running.")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    from .cluster import status

    nodes = status(args.dir)
    if args.json:
        print(json.dumps(nodes, indent=2))
        return 0
    for n in nodes:
        role = "aggregator" if n["shard"] is None else f"shard {n['shard']}"
        rows = "" if n["rows"] is None else f"  {n['rows']} rows"
        print(f"{n['node']:<5} {role:<10} {n['sql']:<21} pid {n['pid'] or '-':<8} {'up' if n['up'] else 'DOWN'}{rows}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot.__main__ import main as run_bot  # imported here so `index` works without discord.py

    return run_bot(corpus=args.corpus, db=args.db)


def _sync(args: argparse.Namespace) -> int:
    from bot.__main__ import sync_commands

    return sync_commands(args.guild)


class _ProgressBar:
    """Build progress on a terminal's stderr; called from the build's thread, hence the lock."""

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
            filled = int(width * done / total) if total else 0
            count = f"{done}/{total}" if total else f"{done}"
            sys.stderr.write(f"\r{stage:<10} [{'#' * filled}{'.' * (width - filled)}] {count}  ")
            sys.stderr.flush()

    def finish(self) -> None:
        with self._lock:
            if self._shown and self._tty:
                sys.stderr.write("\n")
            self._shown = False


if __name__ == "__main__":     # python -m index.cli, as the tests and the benchmarks run it
    sys.exit(main())
