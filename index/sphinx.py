"""The cluster backend: Sphinx 2.2 / Manticore over SphinxQL (the MySQL protocol), with aiomysql.

Reads go to the aggregator (`sphinx://HOST:PORT`), whose distributed index `news` spans the shards.
Writes go to every mirror of the passage's shard (Sphinx 2.2 has no replication), the mirrors being
listed in the aggregator's `meta` index (`newsdesk cluster up` writes that layout). What the traps in
docs/search-cluster.md dictate:

- passage IDs map to integers in 1..2^60 (id 0 is dropped silently, 2^64-1 never matches);
- terms are indexed as hashed tokens [0-9a-z], so no user text and no charset table reaches MATCH();
  escape_match() is applied anyway, as the one way text enters a MATCH();
- a query whose answer carries an agent warning is retried (the aggregator needs a few hundred ms to
  stop picking a dead mirror, even with ha_strategy = nodeads); if the warning stays, the shard it names
  is reported missing and the answer is partial.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import urllib.parse
import warnings
from typing import Any, Awaitable, Callable, Sequence

from .backend import Candidate, Candidates, SearchUnavailable, StoredPassage, content_hash, record_from_json, record_to_json
from .store import PassageRecord

__all__ = ("SphinxBackend", "passage_int", "shard_of", "term_token", "escape_match", "parse_url")

_log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
QUERY_TIMEOUT_S = 10.0       # a read: someone is waiting for the answer
# A write batch waits longer: an RT index holds writes while it saves a full RAM chunk to disk, which took
# over 10 s at 1M passages on a shared machine (bench/README.md). REPLACE and DELETE by ID are idempotent,
# so a write that timed out or lost its connection is sent again, on a fresh connection.
WRITE_TIMEOUT_S = 120.0
WRITE_ATTEMPTS = 4
WRITE_RETRY_DELAY_S = 0.5    # doubled at each attempt: a node the watchdog restarts is back within seconds
AGENT_RETRIES = 3            # a query with an agent warning is asked again this many times...
AGENT_RETRY_DELAY_S = 0.2    # ...this far apart, then answered partial
WRITE_BATCH = 200
SCAN_PAGE = 1000
META_CHUNK = 1_000_000       # characters of metadata per row

_SPECIAL = re.compile(r'([\\()|\-!@~"&/^$=<>\'])')
_AGENT = re.compile(r"agent ([0-9.]+|\[[^\]]+\]|[\w.-]+):(\d+)")
_LOST = {2003, 2006, 2013, 2055}    # can't connect, gone away, lost during query, lost at handshake


def parse_url(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("sphinx", "manticore") or not parsed.hostname:
        raise SearchUnavailable(f"Not a search cluster address: {url!r}.",
                                "Use sphinx://HOST:PORT (the aggregator's SphinxQL port) or `embedded`.")
    return parsed.hostname, parsed.port or 9306


def passage_int(passage_id: str) -> int:
    """The document ID of a passage: 60 bits of its hash plus one (never 0, never near 2^64)."""
    return int(hashlib.sha256(passage_id.encode()).hexdigest()[:15], 16) + 1


def shard_of(passage_id: str, shards: int) -> int:
    """A stable shard for a passage, independent of its document ID's bits."""
    return int.from_bytes(hashlib.sha256(b"shard\x00" + passage_id.encode()).digest()[:8], "big") % shards


def term_token(term: str) -> str:
    """An analysed term as the engine indexes it: letters and digits only, whatever the language."""
    return "w" + hashlib.blake2b(term.encode(), digest_size=8).hexdigest()


def escape_match(text: str) -> str:
    """Text made literal for SphinxQL's extended query syntax."""
    return _SPECIAL.sub(r"\\\1", text)


def match_query(weights: dict[str, float]) -> str:
    """OR over the terms (a quorum of 1), each term's weight an IDF boost (`term^0.6`)."""
    terms = [escape_match(term_token(t)) + ("" if w == 1.0 else f"^{w:.4g}") for t, w in weights.items()]
    return f'"{" ".join(terms)}"/1'


def ranker(params: dict[str, Any], avgdl: float) -> str:
    """The engine's ranking of candidates: BM25+ (index/bm25.py) from the factors a field-level expression has.

    sum(sum_idf) is the matched terms' idf, sum(tf_idf) their idf times tf, both times each term's boost, and
    neither changed by a disk chunk (bm25a is: docs/search-cluster.md). A term scores idf * (delta + (k1 + 1)
    tf / (tf + K)), K = k1 (1 - b + b dl / avgdl): exact here for tf 1 and 2, each occurrence past the second
    adding what the second adds. The idf is the shard's own, which is why this only chooses candidates
    (index/remote.py re-scores them). The earlier sum_idf-over-length ranker, blind to tf, left a better
    passage below 200 candidates on 19 of 500 questions at 200k passages, this one on 5 (bench/cluster.py).
    """
    k1, b = float(params.get("k1", 1.2)), float(params.get("b", 0.75))
    delta = float(params.get("delta", 1.0)) if params.get("method", "plus") == "plus" else 0.0
    norm = f"({k1:.6g}*({1 - b:.6g}+{b:.6g}*dl/{avgdl or 1.0:.6g}))"
    first = f"({delta:.6g}+{k1 + 1:.6g}/(1+{norm}))"
    more = f"({k1 + 1:.6g}*{norm}/((1+{norm})*(2+{norm})))"
    return f"expr('1000000*(sum(sum_idf)*{first}+(sum(tf_idf)-sum(sum_idf))*{more})')"


class SphinxBackend:
    """Pooled aiomysql connections to the aggregator and, for writes, to each shard's mirrors."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.host, self.port = parse_url(url)
        self._pools: dict[tuple[str, int], Any] = {}
        self._pool_lock = asyncio.Lock()
        self._layout: dict | None = None
        self.ranking = ranker({}, 1.0)    # set from the build's statistics and parameters

    # -- connections ----------------------------------------------------------------------------

    async def _pool(self, host: str, port: int) -> Any:
        import aiomysql

        async with self._pool_lock:
            pool = self._pools.get((host, port))
            if pool is None:
                pool = await aiomysql.create_pool(host=host, port=port, minsize=0, maxsize=8, autocommit=True,
                                                  connect_timeout=CONNECT_TIMEOUT_S, charset="utf8", pool_recycle=300)
                self._pools[(host, port)] = pool
            return pool

    async def _run(self, host: str, port: int, sql: str, args: Any = None, *, many: bool = False,
                   diagnostics: bool = False, write: bool = False) -> tuple[list[tuple], list[str]]:
        """Rows (and, with diagnostics, SHOW WARNINGS' messages). A read is retried once on a dropped
        connection; a write (idempotent) also after a timeout, up to WRITE_ATTEMPTS times in all."""
        import pymysql

        timeout, attempts = (WRITE_TIMEOUT_S, WRITE_ATTEMPTS) if write else (QUERY_TIMEOUT_S, 2)
        for attempt in range(attempts):
            again = attempt + 1 < attempts
            delay = WRITE_RETRY_DELAY_S * 2 ** attempt if write else 0.05
            try:
                pool = await self._pool(host, port)
                async with pool.acquire() as conn:
                    try:
                        return await asyncio.wait_for(self._execute(conn, sql, args, many, diagnostics), timeout)
                    except BaseException:
                        conn.close()          # a half-read connection must not go back to the pool
                        raise
            except pymysql.err.OperationalError as e:
                code = e.args[0] if e.args else None
                if code in _LOST and again:
                    _log.info("Connection to %s:%d dropped (%s); retrying", host, port, e)
                    await asyncio.sleep(delay)
                    continue
                raise SearchUnavailable(f"The search node {host}:{port} does not answer ({_first_line(e)}).") from None
            except asyncio.TimeoutError:
                if write and again:
                    _log.warning("A write to %s:%d took over %.0f s; sending it again", host, port, timeout)
                    continue
                late = f"The search node {host}:{port} did not answer within {timeout:.0f} s."
                raise SearchUnavailable(late) from None
            except OSError as e:
                if again:
                    await asyncio.sleep(delay)
                    continue
                raise SearchUnavailable(f"The search node {host}:{port} does not answer ({e}).") from None
        raise AssertionError("unreachable")

    @staticmethod
    async def _execute(conn: Any, sql: str, args: Any, many: bool, diagnostics: bool) -> tuple[list[tuple], list[str]]:
        async with conn.cursor() as cur:
            # aiomysql turns each server warning into a Python warning; ours are read with SHOW WARNINGS.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if many:
                    await cur.executemany(sql, args)
                else:
                    await cur.execute(sql, args)
            rows = list(await cur.fetchall()) if cur.description else []
            notes: list[str] = []
            if diagnostics:
                await cur.execute("SHOW WARNINGS")
                notes = [str(r[-1]) for r in await cur.fetchall()]
            return rows, notes

    async def _agg(self, sql: str, args: Any = None, **kw: Any) -> tuple[list[tuple], list[str]]:
        return await self._run(self.host, self.port, sql, args, **kw)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
            await pool.wait_closed()

    # -- layout and metadata (the aggregator's `meta` index) -------------------------------------

    async def _get(self, name: str) -> str | None:
        rows, _ = await self._agg(f"SELECT data FROM meta WHERE id = {passage_int('meta:' + name)}")
        return rows[0][0] if rows else None

    async def _put(self, name: str, data: str) -> None:
        await self._agg("REPLACE INTO meta (id, body, name, data) VALUES (%s, '', %s, %s)",
                        (passage_int("meta:" + name), name, data), write=True)

    async def _drop(self, names: Sequence[str]) -> None:
        if names:
            ids = ",".join(str(passage_int("meta:" + n)) for n in names)
            await self._agg(f"DELETE FROM meta WHERE id IN ({ids})", write=True)

    def _rank_for(self, meta: dict) -> None:
        """Rank candidates with the build's parameters and average length (meta as write_meta stores it)."""
        self.ranking = ranker(meta.get("params") or {}, float(meta.get("avgdl") or 1.0))

    async def layout(self) -> dict:
        """{"shards": [[mirror "host:port", ...], ...], "api": {"host:apiport": shard}}."""
        if self._layout is None:
            raw = await self._get("layout")
            if raw is None:
                raise SearchUnavailable(f"The cluster at {self.url} has no Newsdesk layout.",
                                        "Start it with `newsdesk cluster up DIR`, or store the layout (README, "
                                        "\"Beyond one machine\").")
            self._layout = json.loads(raw)
        return self._layout

    async def set_layout(self, layout: dict) -> None:
        await self._put("layout", json.dumps(layout))
        self._layout = layout

    async def read_meta(self) -> dict[str, Any] | None:
        raw = await self._get("current")
        if raw is None:
            return None
        current = json.loads(raw)
        parts = [await self._get(f"state.{current['build']}.{i}") for i in range(current["parts"])]
        if any(p is None for p in parts):      # a build replaced it between our reads: read the new one
            return await self.read_meta()
        meta = json.loads("".join(parts))  # type: ignore[arg-type]
        self._rank_for(meta)
        return meta

    async def current_build_id(self) -> int | None:
        raw = await self._get("current")
        return None if raw is None else int(json.loads(raw)["build"])

    async def write_meta(self, meta: dict[str, Any]) -> None:
        """The state in chunks first, then the `current` pointer (readers switch there), then the old chunks go."""
        text = json.dumps(meta, separators=(",", ":"))
        build = meta["build"]["id"]
        old = await self._get("current")
        chunks = [text[i:i + META_CHUNK] for i in range(0, len(text), META_CHUNK)] or [""]
        for i, chunk in enumerate(chunks):
            await self._put(f"state.{build}.{i}", chunk)
        await self._put("current", json.dumps({"build": build, "parts": len(chunks)}))
        if old is not None:
            previous = json.loads(old)
            if previous["build"] != build:
                await self._drop([f"state.{previous['build']}.{i}" for i in range(previous["parts"])])
        self._rank_for(meta)

    # -- reading --------------------------------------------------------------------------------

    async def candidates(self, weights: dict[str, float], depth: int) -> Candidates:
        sql = (f"SELECT id, pid, toks, rec, WEIGHT() AS w FROM news WHERE MATCH(%s) ORDER BY w DESC, id ASC "
               f"LIMIT {int(depth)} OPTION ranker={self.ranking}, "
               f"idf='plain,tfidf_unnormalized', max_matches={max(int(depth), 20)}")
        query = match_query(weights)
        import pymysql

        warnings: list[str] = []
        for attempt in range(AGENT_RETRIES + 1):
            try:
                rows, warnings = await self._agg(sql, (query,), diagnostics=True)
            except pymysql.err.MySQLError as e:
                if "agent" in str(e):    # every agent failed: no shard answered
                    raise SearchUnavailable(f"No shard of the search cluster at {self.url} answers.",
                                            "Check `newsdesk cluster status DIR`.") from None
                raise
            if not any("agent" in w for w in warnings):
                break
            if attempt < AGENT_RETRIES:
                await asyncio.sleep(AGENT_RETRY_DELAY_S)
        missing = await self._missing(warnings) if warnings else ()
        items = [Candidate(pid, toks.split(), record_from_json(pid, rec)) for _id, pid, toks, rec, _w in rows]
        return Candidates(items, missing)

    async def _missing(self, warnings: list[str]) -> tuple[int, ...]:
        api = (await self.layout()).get("api", {})
        shards = set()
        for w in warnings:
            for host, port in _AGENT.findall(w):
                shard = api.get(f"{host}:{port}")
                if shard is not None:
                    shards.add(int(shard))
        if not shards and warnings:
            _log.warning("Search cluster warnings naming no known agent: %s", warnings)
        return tuple(sorted(shards))

    async def records(self, ids: Sequence[str]) -> dict[str, PassageRecord]:
        if not ids:
            return {}
        wanted = {passage_int(i): i for i in ids}
        rows, _ = await self._agg(f"SELECT id, pid, rec FROM news WHERE id IN ({','.join(map(str, wanted))}) "
                                  f"LIMIT {len(wanted)} OPTION max_matches={max(len(wanted), 20)}")
        return {pid: record_from_json(pid, rec) for _id, pid, rec in rows if wanted.get(int(_id)) == pid}

    # -- writing --------------------------------------------------------------------------------

    async def _scan(self, host: str, port: int) -> dict[int, int]:
        """Every (document ID, content hash) one mirror holds, a page at a time."""
        held: dict[int, int] = {}
        last = 0
        while True:
            rows, _ = await self._run(host, port, f"SELECT id, rh FROM news WHERE id > {last} ORDER BY id ASC "
                                                  f"LIMIT {SCAN_PAGE} OPTION max_matches={SCAN_PAGE}")
            for doc, rh in rows:
                held[int(doc)] = int(rh)
            if len(rows) < SCAN_PAGE:
                return held
            last = int(rows[-1][0])

    async def write(self, keep: Sequence[tuple[str, int]],
                    load: Callable[[list[str]], Awaitable[list[StoredPassage]]]) -> dict[str, int]:
        """Every mirror of every shard brought to `keep`: a mirror that missed writes (down during a build)
        is repaired by the next build, since each mirror is compared on its own."""
        layout = await self.layout()
        shards: list[list[str]] = layout["shards"]
        wanted: list[dict[int, tuple[str, int]]] = [{} for _ in shards]
        for pid, rh in keep:
            wanted[shard_of(pid, len(shards))][passage_int(pid)] = (pid, rh)
        written = deleted = 0
        for s, mirrors in enumerate(shards):
            nodes = [_host_port(m) for m in mirrors]
            held = [await self._scan(h, p) for h, p in nodes]
            need: dict[str, list[int]] = {}         # passage ID -> the mirrors that lack it as it is now
            for doc, (pid, rh) in wanted[s].items():
                lacking = [i for i, h in enumerate(held) if h.get(doc) != rh]
                if lacking:
                    need[pid] = lacking
            todo = list(need)
            for start in range(0, len(todo), WRITE_BATCH):
                batch = await load(todo[start:start + WRITE_BATCH])
                for i, (host, port) in enumerate(nodes):
                    rows = [_row(p) for p in batch if i in need[p.record.id]]
                    if rows:
                        await self._run(host, port, "REPLACE INTO news (id, body, pid, toks, rec, dl, rh) "
                                        "VALUES (%s, %s, %s, %s, %s, %s, %s)", rows, many=True, write=True)
                        written += len(rows)
            for i, (host, port) in enumerate(nodes):
                gone = [doc for doc in held[i] if doc not in wanted[s]]
                for start in range(0, len(gone), 1000):
                    ids = ",".join(map(str, gone[start:start + 1000]))
                    await self._run(host, port, f"DELETE FROM news WHERE id IN ({ids})", write=True)
                deleted += len(gone)
            held.clear()
        return {"written": written, "deleted": deleted}


def _row(passage: StoredPassage) -> tuple:
    terms = list(passage.terms)
    return (passage_int(passage.record.id), " ".join(term_token(t) for t in terms), passage.record.id,
            " ".join(terms), record_to_json(passage.record), len(terms), content_hash(passage))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _first_line(error: Exception) -> str:
    return str(error.args[-1] if error.args else error).splitlines()[0].rstrip("\x00")
