"""A local search cluster for development and tests: `newsdesk cluster up/down/status`.

Sphinx 2.2 (Debian's `sphinxsearch`) or Manticore, whichever `searchd` is on PATH. N shards x R replicas,
each an RT index on its own searchd; replicas of a shard are agent mirrors on an aggregator whose
distributed index spans the shards (`ha_strategy = nodeads`: the default mirror choice never stops
picking a dead mirror; see docs/search-cluster.md). The aggregator also holds the `meta` RT index: the
cluster's layout (where each shard's mirrors take writes) and the build's metadata.

searchd daemonises: the process we spawn exits at once, a watchdog and the server stay. The server's PID is
the one in its pid_file, and it is the one to signal (killing the watchdog leaves the server serving).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import NewsdeskError

__all__ = ("Node", "Layout", "ClusterError", "up", "down", "status", "load_layout", "shard_config", "LAYOUT_FILE")

_log = logging.getLogger(__name__)

LAYOUT_FILE = "cluster.json"
START_TIMEOUT_S = 15.0


class ClusterError(NewsdeskError):
    """The local cluster cannot be started, stopped or read."""


@dataclass(frozen=True)
class Node:
    name: str               # "s0r1" (shard 0, replica 1) or "agg"
    shard: int | None       # None for the aggregator
    api_port: int           # SphinxAPI: what the aggregator's agents talk to
    sql_port: int           # SphinxQL (MySQL protocol): what Newsdesk talks to

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sql_port}"


@dataclass(frozen=True)
class Layout:
    shards: int
    replicas: int
    nodes: tuple[Node, ...]

    @property
    def aggregator(self) -> Node:
        return next(n for n in self.nodes if n.shard is None)

    def mirrors(self) -> list[list[str]]:
        """Each shard's SphinxQL addresses, the form the backend keeps in the cluster's meta."""
        return [[n.address for n in self.nodes if n.shard == s] for s in range(self.shards)]

    @property
    def url(self) -> str:
        return f"sphinx://{self.aggregator.address}"


SHARD_INDEX = """index news {{
    type = rt
    path = {data}/news
    rt_field = body            # the passage's analysed terms, each hashed to [0-9a-z] (index/sphinx.py)
    rt_attr_string = pid       # the product's passage ID
    rt_attr_string = toks      # the analysed terms as they are, for re-scoring and proximity
    rt_attr_string = rec       # the stored record: text and places (JSON)
    rt_attr_uint = dl          # document length in terms
    rt_attr_bigint = rh        # hash of what is stored: the build rewrites a row only when it changed
    rt_mem_limit = 512M
    dict = keywords
    min_word_len = 1
}}
"""

META_INDEX = """index meta {{
    type = rt
    path = {data}/meta
    rt_field = body
    rt_attr_string = name
    rt_attr_string = data
}}
"""

SEARCHD = """searchd {{
    listen = 127.0.0.1:{api}
    listen = 127.0.0.1:{sql}:mysql41
    log = {dir}/searchd.log
    query_log = {dir}/query.log
    pid_file = {dir}/searchd.pid
    binlog_path = {dir}/binlog
    workers = threads
    listen_backlog = 128
    max_packet_size = 32M
    read_timeout = 10
    client_timeout = 60
}}
"""


def shard_config(node_dir: Path, api: int, sql: int) -> str:
    return SHARD_INDEX.format(data=node_dir / "data") + SEARCHD.format(api=api, sql=sql, dir=node_dir)


def aggregator_config(node_dir: Path, api: int, sql: int, layout_nodes: list[Node], shards: int) -> str:
    agents = []
    for s in range(shards):
        mirrors = "|".join(f"127.0.0.1:{n.api_port}:news" for n in layout_nodes if n.shard == s)
        agents.append(f"    agent = {mirrors}")
    distributed = ("index news {\n    type = distributed\n" + "\n".join(agents) + "\n"
                   "    agent_connect_timeout = 300\n    agent_query_timeout = 5000\n    ha_strategy = nodeads\n}\n")
    return distributed + META_INDEX.format(data=node_dir / "data") + SEARCHD.format(api=api, sql=sql, dir=node_dir)


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def _searchd() -> str:
    path = shutil.which("searchd")
    if path is None:
        raise ClusterError("searchd is not installed (Sphinx or Manticore).",
                           "Install it: apt-get install sphinxsearch (or Manticore Search from manticoresearch.com).")
    return path


def up(directory: Path, shards: int = 2, replicas: int = 2, base_port: int | None = None) -> Layout:
    """Write the configs, start every searchd, wait until each answers SphinxQL, record the layout."""
    if shards < 1 or replicas < 1:
        raise ClusterError("A cluster needs at least one shard and one replica.")
    directory = Path(directory).resolve()
    if (directory / LAYOUT_FILE).exists() and any(_alive(p) for p in _pids(directory).values()):
        raise ClusterError(f"A cluster is already running in {directory}.", f"Stop it first: newsdesk cluster down {directory}")
    searchd = _searchd()
    count = shards * replicas + 1
    if base_port is None:
        ports = _free_ports(2 * count)
    else:
        ports = [base_port + i for i in range(2 * count)]
    nodes = [Node(f"s{s}r{r}", s, ports[2 * (s * replicas + r)], ports[2 * (s * replicas + r) + 1])
             for s in range(shards) for r in range(replicas)]
    nodes.append(Node("agg", None, ports[-2], ports[-1]))
    layout = Layout(shards, replicas, tuple(nodes))
    directory.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        node_dir = directory / node.name
        (node_dir / "data").mkdir(parents=True, exist_ok=True)
        (node_dir / "binlog").mkdir(exist_ok=True)
        text = (aggregator_config(node_dir, node.api_port, node.sql_port, nodes, shards) if node.shard is None
                else shard_config(node_dir, node.api_port, node.sql_port))
        (node_dir / "searchd.conf").write_text(text)
    (directory / LAYOUT_FILE).write_text(json.dumps({"shards": shards, "replicas": replicas,
                                                     "nodes": [asdict(n) for n in nodes]}, indent=2))
    try:
        for node in nodes:
            _start(searchd, directory / node.name)
        deadline = time.monotonic() + START_TIMEOUT_S
        for node in nodes:
            _wait_for(node, directory / node.name, deadline)
        _register(layout)
    except BaseException:
        down(directory)
        raise
    return layout


def _register(layout: Layout) -> None:
    """The layout into the aggregator's meta: where writes go, and which agent port is which shard."""
    import pymysql

    from .sphinx import passage_int

    data = json.dumps({"shards": layout.mirrors(),
                       "api": {f"127.0.0.1:{n.api_port}": n.shard for n in layout.nodes if n.shard is not None}})
    conn = pymysql.connect(host="127.0.0.1", port=layout.aggregator.sql_port, autocommit=True, charset="utf8")
    try:
        with conn.cursor() as cur:
            cur.execute("REPLACE INTO meta (id, body, name, data) VALUES (%s, '', 'layout', %s)",
                        (passage_int("meta:layout"), data))
    finally:
        conn.close()


def _start(searchd: str, node_dir: Path) -> None:
    # The spawned process forks the watchdog and exits; waiting for it reaps it (no zombie left behind).
    done = subprocess.run([searchd, "--config", str(node_dir / "searchd.conf")], cwd=node_dir,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if done.returncode != 0:
        tail = done.stdout.decode(errors="replace").strip().splitlines()[-3:]
        raise ClusterError(f"searchd did not start in {node_dir}: {' / '.join(tail)}")


def _wait_for(node: Node, node_dir: Path, deadline: float) -> None:
    import pymysql

    while True:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=node.sql_port, connect_timeout=1)
            conn.close()
            if _pid_of(node_dir) is not None:
                return
        except pymysql.err.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"searchd {node.name} did not answer on port {node.sql_port} within {START_TIMEOUT_S:.0f} s "
                               f"(see {node_dir / 'searchd.log'}).")
        time.sleep(0.02)


def load_layout(directory: Path) -> Layout:
    try:
        raw = json.loads((Path(directory) / LAYOUT_FILE).read_text())
    except FileNotFoundError:
        raise ClusterError(f"No cluster in {directory}.", f"Start one: newsdesk cluster up {directory}") from None
    return Layout(raw["shards"], raw["replicas"], tuple(Node(**n) for n in raw["nodes"]))


def _pid_of(node_dir: Path) -> int | None:
    try:
        return int((node_dir / "searchd.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _pids(directory: Path) -> dict[str, int]:
    out = {}
    for node_dir in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else []:
        pid = _pid_of(node_dir) if node_dir.is_dir() else None
        if pid is not None:
            out[node_dir.name] = pid
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def down(directory: Path, timeout: float = 10.0) -> list[str]:
    """Stop every node by its pid_file PID (SIGTERM, then SIGKILL after timeout); the names stopped."""
    stopped = []
    pids = _pids(directory)
    for name, pid in pids.items():
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                stopped.append(name)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for name, pid in pids.items():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            _log.warning("searchd %s (PID %d) ignored SIGTERM; killing it", name, pid)
            os.kill(pid, signal.SIGKILL)
    for name in pids:
        (Path(directory) / name / "searchd.pid").unlink(missing_ok=True)
    return stopped


def status(directory: Path) -> list[dict]:
    """Each node: name, shard, ports, PID, whether it answers, and its rows (shards) or None."""
    import pymysql

    layout = load_layout(directory)
    pids = _pids(directory)
    out = []
    for node in layout.nodes:
        row: dict = {"node": node.name, "shard": node.shard, "sql": node.address, "api_port": node.api_port,
                     "pid": pids.get(node.name), "up": False, "rows": None}
        try:
            conn = pymysql.connect(host="127.0.0.1", port=node.sql_port, connect_timeout=1, read_timeout=3)
            try:
                with conn.cursor() as cur:
                    row["up"] = True
                    if node.shard is not None:
                        cur.execute("SELECT COUNT(*) FROM news")
                        row["rows"] = int(cur.fetchone()[0])
            finally:
                conn.close()
        except pymysql.err.MySQLError:
            pass
        out.append(row)
    return out
