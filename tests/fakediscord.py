"""A fake Discord (REST + gateway) on loopback that the unmodified discord.py client can log in to."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import json
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator, Mapping

import discord
import yarl
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000

# Message flags the fake interprets.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Interaction types (what Discord sends) and callback types (what the bot answers).
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = 4, 5, 6, 7, 8, 9

# Privileged intents: Discord closes the gateway with 4014 unless enabled in the developer portal.
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
MESSAGE_CONTENT = 1 << 15
GUILD_MESSAGES = 1 << 9
REPLY = 19            # message type of a reply
PUBLIC_THREAD = 11    # channel type

_increment = itertools.count()


def snowflake(at: float | None = None) -> int:
    """A real time-based snowflake: discord.py derives created_at, expiry and cooldowns from it."""
    ms = int((time.time() if at is None else at) * 1000)
    return ((ms - DISCORD_EPOCH_MS) << 22) | (1 << 17) | (next(_increment) & 0xFFF)


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


MEMBER_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, read_message_history=True, use_application_commands=True
).value
# Discord sends an administrator's computed permissions as "everything".
ADMIN_PERMISSIONS = discord.Permissions.all().value
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, read_message_history=True, embed_links=True,
    attach_files=True, add_reactions=True, use_external_emojis=True, send_messages_in_threads=True,
).value

APP_ID = 1300000000000000001  # also the bot user's id, as for every modern application
GUILD_ID = 1300000000000000100
CHANNEL_ID = 1300000000000000200
ADMIN_ROLE_ID = 1300000000000000300
JOINED_AT = "2024-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class FakeUser:
    """A guild member as the fake describes it; `permissions` is what interactions report."""

    id: int
    username: str
    permissions: int = MEMBER_PERMISSIONS
    role_ids: tuple[int, ...] = ()
    bot: bool = False

    def user_payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "username": self.username, "discriminator": "0", "global_name": self.username,
                "avatar": None, "bot": self.bot, "public_flags": 0}

    def member_payload(self, permissions: int | None = None) -> dict[str, Any]:
        perms = self.permissions if permissions is None else permissions
        return {"user": self.user_payload(), "roles": [str(r) for r in self.role_ids], "joined_at": JOINED_AT,
                "flags": 0, "deaf": False, "mute": False, "nick": None, "avatar": None, "premium_since": None,
                "pending": False, "communication_disabled_until": None, "permissions": str(perms)}


ADMIN = FakeUser(1300000000000001001, "admin", ADMIN_PERMISSIONS, (ADMIN_ROLE_ID,))   # the application's owner
MEMBER = FakeUser(1300000000000001002, "member")
STRANGER = FakeUser(1300000000000001003, "stranger")
# A member with Manage Server who does not own the application (an admin of some server the bot is in).
MANAGER = FakeUser(1300000000000001004, "manager", MEMBER_PERMISSIONS | discord.Permissions(manage_guild=True).value)
OTHER_GUILD_ID = 1300000000000000101   # a second server, for interactions from elsewhere
# A server the bot may be in (fake.other_guilds) that Discord puts on shard 1 of 2: (id >> 22) % 2 == 1.
# GUILD_ID is on shard 0.
SHARD1_GUILD_ID = GUILD_ID + (1 << 22)


def new_user(username: str, permissions: int = MEMBER_PERMISSIONS, role_ids: tuple[int, ...] = ()) -> FakeUser:
    """A fresh user id, e.g. so cooldown buckets do not bleed between tests."""
    return FakeUser(snowflake(), username, permissions, role_ids)


@dataclass(repr=False)
class RecordedRequest:
    """One REST request as the fake saw it; `path` is relative to /api/v10 when under it."""

    index: int
    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: Mapping[str, str]  # case-insensitive
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    status: int = 0
    response: Any = None
    consumed: bool = False

    def __str__(self) -> str:
        return f"#{self.index} {self.method} {self.path} -> {self.status}"

    def __repr__(self) -> str:  # assertion messages stay readable; the bodies are one attribute away
        return f"<RecordedRequest {self}>"


@dataclass
class GatewayFrame:
    """One frame the client sent over the gateway."""

    op: int
    d: Any
    connection: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    user: dict[str, Any]
    message_type: int
    dispatched_at: float
    component_message_id: int | None = None
    response_type: int | None = None
    original_message_id: int | None = None
    message_ids: set[int] = field(default_factory=set)


class _GatewayConnection:
    def __init__(self, number: int, ws: web.WebSocketResponse, compress: bool, query: dict[str, str]) -> None:
        self.number = number
        self.ws = ws
        self.query = query
        self.compressed = compress
        self.session_id: str | None = None
        self.intents = 0
        self.shard: tuple[int, int] = (0, 1)   # [shard_id, shard_count] from IDENTIFY
        self._zlib = zlib.compressobj() if compress else None
        # compressobj is stateful: frames must be compressed and written in the same order.
        self._lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self._lock:
            if self._zlib is None:
                await self.ws.send_str(text)
            else:
                await self.ws.send_bytes(self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH))


class _AttachmentPayload(dict):
    """An attachment payload given as an option value (type 11), not a subcommand's options."""


_CDN_PATH = re.compile(r"/attachments/(?P<cid>\d+)/(?P<aid>\d+)/[^/]+")


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"message": message, "code": code}


Handler = Callable[[RecordedRequest, dict[str, str]], "tuple[int, Any]"]


class FakeDiscord:
    """REST + gateway fake; start it, point discord.py at it with patch(), drive it with dispatch()."""

    def __init__(self, token: str = "test-token", *, app_id: int = APP_ID, ack_deadline: float = 3.0,
                 heartbeat_interval_ms: int = 41250, privileged_intents: int = 0, shards: int = 1,
                 max_concurrency: int = 1) -> None:
        self.token = token
        self.app_id = app_id
        self.ack_deadline = ack_deadline  # seconds from dispatch; mutable per test
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents  # which privileged intents the "portal" enabled
        self.shards, self.max_concurrency = shards, max_concurrency   # what GET /gateway/bot recommends
        self.other_guilds: list[int] = []   # more servers the bot is in; each arrives on the shard that owns it
        self.bot_user = FakeUser(app_id, "Newsdesk", BOT_PERMISSIONS, bot=True)
        self.guild_id, self.channel_id = GUILD_ID, CHANNEL_ID
        self.members = [self.bot_user, ADMIN, MEMBER, STRANGER, MANAGER]
        self.owner: FakeUser = ADMIN                # the application's owner, as application info reports
        self.team: list[FakeUser] | None = None      # or a team owns it: these members, role "developer"

        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self.gateway_frames: list[GatewayFrame] = []
        self.connections: list[_GatewayConnection] = []
        self.messages: dict[int, dict[str, Any]] = {}  # id -> latest JSON
        self.deleted_message_ids: list[int] = []
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.channels: dict[int, dict[str, Any]] = {}   # threads the bot created (id -> channel payload)
        self.cdn: dict[int, tuple[bytes, str]] = {}     # attachment id -> (bytes, content type), served by _cdn
        self.faults: list[list[Any]] = []               # [method, path pattern, status, times left or None]
        self._dm_channels: dict[int, int] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._interactions: dict[int, _Interaction] = {}
        self._sessions: dict[str, int] = {}  # session id -> last seq
        self._active: _GatewayConnection | None = None
        self._changed: asyncio.Event | None = None  # replaced on every change; waiters hold the old one
        self._watched: list[asyncio.Task[Any]] = []
        self._watched_sends: list[asyncio.Future[Any]] = []   # dispatches a REST handler started
        self._runner: web.AppRunner | None = None
        self.port = 0

        def route(method: str, pattern: str, handler: Handler, auth: bool = True):
            return method, re.compile(pattern), handler, auth

        webhook = r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)"
        self._routes = [
            route("GET", r"/users/@me", lambda r, m: (200, self._me_payload())),
            route("GET", r"/oauth2/applications/@me", lambda r, m: (200, self._application_payload())),
            route("GET", r"/gateway", lambda r, m: (200, {"url": self.gateway_url}), auth=False),
            route("GET", r"/gateway/bot", lambda r, m: (200, self._gateway_bot_payload())),
            route("PUT", r"/applications/(?P<app>\d+)(?:/guilds/(?P<guild>\d+))?/commands", self._put_commands),
            route("GET", r"/applications/(?P<app>\d+)(?:/guilds/(?P<guild>\d+))?/commands", self._get_commands),
            route("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", self._callback, auth=False),
            route("POST", webhook, self._followup, auth=False),
            *(route(verb, webhook + r"/messages/(?P<mid>@original|\d+)", self._webhook_message, auth=False)
              for verb in ("GET", "PATCH", "DELETE")),
            route("POST", r"/channels/(?P<cid>\d+)/messages", self._channel_send),
            route("POST", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/threads", self._start_thread),
            route("POST", r"/channels/(?P<cid>\d+)/typing", lambda r, m: (204, None)),
            *(route(verb, r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._channel_message)
              for verb in ("GET", "PATCH", "DELETE")),
        ]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        self._changed = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @contextlib.contextmanager
    def patch(self) -> Iterator[FakeDiscord]:
        """Point discord.py's process-wide REST base and gateway at this fake, restoring them after."""
        old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ------------------------------------------------------------------ recording and waiting

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait_until(self, find: Callable[[], Any], timeout: float, describe: Callable[[], str]) -> Any:
        assert self._changed is not None, "FakeDiscord is not started"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed  # taken before find(): no change can slip between the two
            if (found := find()) is not None:
                return found
            self._raise_if_bot_died()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(describe())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Make waits fail at once, with the cause, if this (bot connect) task dies."""
        self._watched.append(task)
        task.add_done_callback(lambda _: self._notify())

    def _raise_if_bot_died(self) -> None:
        for task in self._watched:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"the bot's gateway task died: {task.exception()!r}") from task.exception()

    async def wait_for_request(self, method: str, path_regex: str, *, timeout: float = 10.0,
                               after: RecordedRequest | None = None,
                               predicate: Callable[[RecordedRequest], bool] | None = None) -> RecordedRequest:
        """First not-yet-consumed request whose path fullmatches path_regex (and predicate); consumes it."""
        pattern = re.compile(path_regex)
        start = 0 if after is None else after.index + 1

        def find() -> RecordedRequest | None:
            for req in self.requests[start:]:
                if (not req.consumed and req.method == method.upper() and pattern.fullmatch(req.path)
                        and (predicate is None or predicate(req))):
                    req.consumed = True
                    return req
            return None

        def describe() -> str:
            seen = "\n  ".join(f"{r}{' (consumed)' if r.consumed else ''}" for r in self.requests) or "(none)"
            return f"no {method.upper()} {path_regex!r} within {timeout}s; received:\n  {seen}"

        return await self._wait_until(find, timeout, describe)

    def requests_matching(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """All recorded requests matching, consumed or not (does not consume)."""
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and pattern.fullmatch(r.path)]

    def assert_no_unexpected(self) -> None:
        assert not self.unexpected, "unexpected routes called: " + ", ".join(map(str, self.unexpected))

    async def wait_for_callback(self, interaction: dict[str, Any], timeout: float = 10.0) -> RecordedRequest:
        return await self.wait_for_request("POST", rf"/interactions/{interaction['id']}/[^/]+/callback",
                                           timeout=timeout)

    async def wait_for_webhook(self, interaction: dict[str, Any], method: str = "PATCH",
                               message: str = "@original", timeout: float = 10.0) -> RecordedRequest:
        """A webhook call for this interaction: PATCH @original by default; method="POST" is a followup."""
        base = rf"/webhooks/{self.app_id}/{re.escape(interaction['token'])}"
        path = base if method.upper() == "POST" else rf"{base}/messages/{message}"
        return await self.wait_for_request(method, path, timeout=timeout)

    async def wait_for_gateway(self, op: int, timeout: float = 10.0) -> GatewayFrame:
        """The latest frame with this opcode the client sent (waits for one if none yet)."""
        def find() -> GatewayFrame | None:
            return next((f for f in reversed(self.gateway_frames) if f.op == op), None)

        return await self._wait_until(find, timeout, lambda: f"no gateway op {op} within {timeout}s; got "
                                      f"{[f.op for f in self.gateway_frames]}")

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _GatewayConnection(len(self.connections), ws, request.query.get("compress") == "zlib-stream",
                                  dict(request.query))
        self.connections.append(conn)
        await conn.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                frame = json.loads(msg.data)
                self.gateway_frames.append(GatewayFrame(frame.get("op"), frame.get("d"), conn.number))
                await self._on_gateway_frame(conn, frame.get("op"), frame.get("d"))
                self._notify()
        finally:
            if self._active is conn:
                self._active = None
        return ws

    async def _on_gateway_frame(self, conn: _GatewayConnection, op: int, d: Any) -> None:
        if op == 1:  # HEARTBEAT
            await conn.send({"op": 11})
        elif op == 2:  # IDENTIFY
            if d.get("token") != self.token:
                await conn.ws.close(code=4004, message=b"Authentication failed.")
            elif d.get("intents", 0) & PRIVILEGED_INTENTS & ~self.privileged_intents:
                await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            elif not 0 <= (shard := tuple(d.get("shard") or (0, 1)))[0] < shard[1]:
                await conn.ws.close(code=4010, message=b"Invalid shard.")
            else:
                conn.session_id = secrets.token_hex(16)
                conn.intents = d.get("intents", 0)
                conn.shard = (int(shard[0]), int(shard[1]))
                self._sessions[conn.session_id] = 0
                self._active = conn
                guilds = [g for g in (self.guild_id, *self.other_guilds)
                          if self.shard_of(g, conn.shard[1]) == conn.shard[0]]
                await self._send_dispatch(conn, "READY", self._ready_payload(conn.session_id, d.get("shard"), guilds))
                for guild in guilds:
                    await self._send_dispatch(conn, "GUILD_CREATE", self._guild_payload(d.get("intents", 0), guild))
        elif op == 6:  # RESUME
            if d.get("token") == self.token and d.get("session_id") in self._sessions:
                conn.session_id = d["session_id"]
                conn.intents = next((c.intents for c in self.connections if c.session_id == conn.session_id
                                     and c.intents), 0)
                conn.shard = next((c.shard for c in self.connections if c.session_id == conn.session_id), conn.shard)
                self._active = conn
                await self._send_dispatch(conn, "RESUMED", {})
            else:
                await conn.send({"op": 9, "d": False})
        elif op == 8:  # REQUEST_GUILD_MEMBERS
            wanted = {str(u) for u in (d.get("user_ids") or [])}
            query = (d.get("query") or "").lower()
            members = [u.member_payload() for u in self.members
                       if (str(u.id) in wanted if wanted else u.username.startswith(query))]
            await self._send_dispatch(conn, "GUILD_MEMBERS_CHUNK", {
                "guild_id": str(self.guild_id), "members": members, "chunk_index": 0, "chunk_count": 1,
                "nonce": d.get("nonce"), "not_found": []})

    async def _send_dispatch(self, conn: _GatewayConnection, event: str, payload: Any) -> int:
        assert conn.session_id is not None
        seq = self._sessions[conn.session_id] = self._sessions[conn.session_id] + 1
        await conn.send({"op": 0, "t": event, "s": seq, "d": payload})
        return seq

    @staticmethod
    def shard_of(guild_id: int, shard_count: int) -> int:
        """Discord's rule: which shard receives a server's events."""
        return (guild_id >> 22) % shard_count

    def connection_for(self, guild_id: int | str | None) -> _GatewayConnection | None:
        """The live session whose shard owns this server (DMs: shard 0); the latest session first."""
        live = [c for c in (self._active, *reversed(self.connections))
                if c is not None and c.session_id is not None and not c.ws.closed]
        for conn in live:
            if (self.shard_of(int(guild_id), conn.shard[1]) if guild_id else 0) == conn.shard[0]:
                return conn
        return None

    async def dispatch(self, event: str, payload: dict[str, Any]) -> int:
        """Send a DISPATCH to the live session of the shard owning payload's guild_id; returns its seq.
        Starts the ack clock for interactions."""
        conn = self.connection_for(payload.get("guild_id"))
        if conn is None:
            raise RuntimeError("no identified gateway connection to dispatch on (is the bot running and ready, "
                               "on the shard owning this server?)")
        if event == "INTERACTION_CREATE":
            self._track_interaction(payload).dispatched_at = time.monotonic()
        return await self._send_dispatch(conn, event, payload)

    async def interact(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Dispatch INTERACTION_CREATE and return the payload, for chaining into wait_for_callback."""
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; discord.py redials resume_gateway_url and sends RESUME."""
        if self._active is None:
            raise RuntimeError("no live gateway connection")
        await self._active.send({"op": 7, "d": None})

    # ------------------------------------------------------------------ static payloads

    def _me_payload(self) -> dict[str, Any]:
        return {**self.bot_user.user_payload(), "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US"}

    def _application_payload(self) -> dict[str, Any]:
        team = None
        if self.team is not None:
            # Discord: a team-owned app reports a placeholder owner user and the team with its members.
            team = {"id": str(self.app_id + 7), "name": "Newsdesk team", "icon": None,
                    "owner_user_id": str(self.team[0].id) if self.team else "0",
                    "members": [{"user": u.user_payload(), "team_id": str(self.app_id + 7), "membership_state": 2,
                                 "permissions": ["*"], "role": "developer"} for u in self.team]}
        owner = FakeUser(self.app_id + 7, "team" + str(self.app_id + 7)) if team else self.owner
        return {"id": str(self.app_id), "name": "Newsdesk", "description": "", "icon": None, "bot_public": False,
                "bot_require_code_grant": False, "owner": owner.user_payload(), "verify_key": "0" * 64,
                "flags": 0, "interactions_endpoint_url": None, "bot": self.bot_user.user_payload(),
                "team": team, "summary": "", "rpc_origins": [], "tags": []}

    def _gateway_bot_payload(self) -> dict[str, Any]:
        return {"url": self.gateway_url, "shards": self.shards, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": self.max_concurrency}}

    def _ready_payload(self, session_id: str, shard: list[int] | None, guilds: list[int]) -> dict[str, Any]:
        return {"v": 10, "user": self._me_payload(), "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
                "session_id": session_id, "resume_gateway_url": self.gateway_url, "shard": shard or [0, 1],
                "application": {"id": str(self.app_id), "flags": 0}, "private_channels": [], "relationships": []}

    def channel_payload(self) -> dict[str, Any]:
        return {"id": str(self.channel_id), "type": 0, "name": "newsroom", "position": 0,
                "guild_id": str(self.guild_id), "permission_overwrites": [], "nsfw": False, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None, "flags": 0}

    def _guild_payload(self, intents: int, guild_id: int | None = None) -> dict[str, Any]:
        guild = self.guild_id if guild_id is None else guild_id
        # Another server's channel has id guild + 1000, as in interactions from it (chat_input(guild_id=...)).
        channel = self.channel_payload() if guild == self.guild_id else \
            {**self.channel_payload(), "id": str(guild + 1000), "guild_id": str(guild)}
        everyone = {"id": str(guild), "name": "@everyone", "permissions": str(MEMBER_PERMISSIONS),
                    "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        admin_perms = discord.Permissions(administrator=True, manage_guild=True).value
        admin = {**everyone, "id": str(ADMIN_ROLE_ID), "name": "Admin", "permissions": str(admin_perms),
                 "position": 1}
        # Without the GUILD_MEMBERS intent Discord only sends the bot's own member.
        users = self.members if intents & discord.Intents(members=True).value else [self.bot_user]
        members = [{k: v for k, v in u.member_payload().items() if k != "permissions"} for u in users]
        threads = [copy.deepcopy(t) for t in self.channels.values()
                   if t.get("type") == PUBLIC_THREAD and t.get("guild_id") == str(guild)]
        return {"id": str(guild), "name": "Newsdesk Test Guild" if guild == self.guild_id else f"Server {guild}",
                "owner_id": str(ADMIN.id),
                "unavailable": False, "member_count": len(self.members), "large": False, "roles": [everyone, admin],
                "channels": [channel], "members": members,
                "threads": threads, "emojis": [],
                "stickers": [], "features": [], "voice_states": [], "presences": [], "stage_instances": [],
                "guild_scheduled_events": [], "soundboard_sounds": [], "preferred_locale": "en-US",
                "joined_at": JOINED_AT, "icon": None, "verification_level": 0, "default_message_notifications": 0,
                "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
                "system_channel_id": None, "afk_channel_id": None, "afk_timeout": 300}

    # ------------------------------------------------------------------ interaction payload builders

    def _command_id(self, name: str, command_type: int, guild_id: int | None = None) -> int:
        return self._command_ids.setdefault((guild_id, command_type, name), snowflake())

    def _interaction(self, interaction_type: int, data: dict[str, Any] | None, user: FakeUser,
                     permissions: int | None, locale: str, message: dict[str, Any] | None = None,
                     message_type: int = 0, where: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(snowflake()), "application_id": str(self.app_id), "type": interaction_type,
            "token": secrets.token_urlsafe(48), "version": 1, "guild_id": str(self.guild_id),
            "channel_id": str(self.channel_id), "channel": self.channel_payload(),
            "member": user.member_payload(permissions), "app_permissions": str(BOT_PERMISSIONS),
            "locale": locale, "guild_locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)}, "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,  # discord.py 2.7 raises KeyError without it
        }
        payload.update(self._where(user, where or {}))
        if data is not None:
            payload["data"] = data
        if message is not None:
            payload["message"] = message
        self._track_interaction(payload, message_type)
        return payload

    def _where(self, user: FakeUser, where: dict[str, Any]) -> dict[str, Any]:
        """Payload fields for an interaction elsewhere: guild_id=<another server>, channel_id=<a thread>, or dm=True."""
        if where.get("dm"):
            dm = {"id": str(self._dm_channel(user)), "type": 1, "recipients": [user.user_payload()], "flags": 0}
            return {"guild_id": None, "member": None, "user": user.user_payload(), "channel_id": dm["id"],
                    "channel": dm, "context": 1, "authorizing_integration_owners": {"0": "0", "1": str(user.id)}}
        out: dict[str, Any] = {}
        if where.get("guild_id"):
            guild = int(where["guild_id"])
            channel = {**self.channel_payload(), "id": str(guild + 1000), "guild_id": str(guild)}
            out.update(guild_id=str(guild), channel_id=channel["id"], channel=channel,
                       authorizing_integration_owners={"0": str(guild)})
        if where.get("channel_id"):
            cid = int(where["channel_id"])
            out.update(channel_id=str(cid), channel=copy.deepcopy(self.channels.get(cid) or
                                                                   {**self.channel_payload(), "id": str(cid)}))
        return out

    def _dm_channel(self, user: FakeUser) -> int:
        return self._dm_channels.setdefault(user.id, snowflake())

    def _track_interaction(self, payload: dict[str, Any], message_type: int = 0) -> _Interaction:
        iid = int(payload["id"])
        if iid not in self._interactions:
            message = payload.get("message")
            self._interactions[iid] = _Interaction(
                id=iid, token=payload["token"], type=payload["type"],
                channel_id=int(payload.get("channel_id") or self.channel_id),
                user=(payload.get("member") or {}).get("user") or payload.get("user") or {},
                message_type=message_type, dispatched_at=time.monotonic(),
                component_message_id=int(message["id"]) if message else None)
        return self._interactions[iid]

    @staticmethod
    def _options(values: dict[str, Any], focused: str | None = None) -> list[dict[str, Any]]:
        out = []
        for name, value in values.items():
            if isinstance(value, _AttachmentPayload):
                out.append({"name": name, "type": 11, "value": value["id"]})
                continue
            if isinstance(value, dict):  # a subcommand, or a group if it only holds subcommands
                is_group = bool(value) and all(isinstance(v, dict) for v in value.values())
                out.append({"name": name, "type": 2 if is_group else 1,
                            "options": FakeDiscord._options(value, focused)})
                continue
            # bool before int: bool is an int subclass.
            kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else \
                10 if isinstance(value, float) else 3
            option = {"name": name, "type": kind, "value": value}
            if name == focused:
                option["focused"] = True
            out.append(option)
        return out

    @staticmethod
    def _resolved_attachments(values: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for value in values.values():
            if isinstance(value, _AttachmentPayload):
                found[value["id"]] = dict(value)
            elif isinstance(value, dict):
                found.update(FakeDiscord._resolved_attachments(value))
        return found

    @staticmethod
    def _has_focused(options: list[dict[str, Any]]) -> bool:
        return any(o.get("focused") or FakeDiscord._has_focused(o.get("options", [])) for o in options)

    def chat_input(self, name: str, options: dict[str, Any] | None = None, *, user: FakeUser = MEMBER,
                   permissions: int | None = None, guild_command: bool = False,
                   locale: str = "en-US", **where: Any) -> dict[str, Any]:
        """A slash command; options str->3, int->4, bool->5, float->10, fake.attachment(...)->11, dict->subcommand.

        where: guild_id=<another server>, channel_id=<a thread or channel>, or dm=True.
        """
        guild = self.guild_id if guild_command else None
        data: dict[str, Any] = {"id": str(self._command_id(name, 1, guild)), "name": name, "type": 1,
                                "options": self._options(options or {})}
        if attachments := self._resolved_attachments(options or {}):
            data["resolved"] = {"attachments": attachments}
        if guild_command:
            data["guild_id"] = str(self.guild_id)
        return self._interaction(APPLICATION_COMMAND, data, user, permissions, locale, message_type=20, where=where)

    def autocomplete(self, name: str, options: dict[str, Any], focused: str, *, user: FakeUser = MEMBER,
                     permissions: int | None = None, locale: str = "en-US") -> dict[str, Any]:
        """An autocomplete request (interaction type 4) with `focused` marked."""
        opts = self._options(options, focused)
        if not self._has_focused(opts):
            raise ValueError(f"focused option {focused!r} is not among {list(options)}")
        data = {"id": str(self._command_id(name, 1)), "name": name, "type": 1, "options": opts}
        return self._interaction(AUTOCOMPLETE, data, user, permissions, locale)

    def message_command(self, name: str, target_message: dict[str, Any] | int | str, *, user: FakeUser = MEMBER,
                        permissions: int | None = None, locale: str = "en-US") -> dict[str, Any]:
        """A message context-menu command on target_message (a message dict or a stored message id)."""
        target = self._resolve_message(target_message)
        data = {"id": str(self._command_id(name, 3)), "name": name, "type": 3, "target_id": target["id"],
                "resolved": {"messages": {target["id"]: target}}}
        return self._interaction(APPLICATION_COMMAND, data, user, permissions, locale, message_type=23)

    def component(self, custom_id: str, message: dict[str, Any] | int | str, *, user: FakeUser = MEMBER,
                  component_type: int = 2, values: list[str] | None = None, permissions: int | None = None,
                  locale: str = "en-US", **where: Any) -> dict[str, Any]:
        """A button press (or select with values) on the *latest stored state* of a message."""
        stored = self._resolve_message(message)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        where.setdefault("channel_id", int(stored["channel_id"]))
        return self._interaction(MESSAGE_COMPONENT, data, user, permissions, locale, message=stored, where=where)

    def make_message(self, content: str, *, author: FakeUser = MEMBER, embeds: list[dict[str, Any]] | None = None,
                     channel_id: int | None = None) -> dict[str, Any]:
        """A message by someone else, stored so it can be a context-menu target or fetched."""
        message = self._new_message(channel_id or self.channel_id, {"content": content, "embeds": embeds or []},
                                    author=author)
        return copy.deepcopy(message)

    def user_message(self, content: str, *, author: FakeUser = MEMBER, mention_bot: bool = True,
                     reply_to: dict[str, Any] | int | str | None = None,
                     channel_id: int | None = None) -> dict[str, Any]:
        """A message someone posts (stored), as MESSAGE_CREATE carries it; `mention_bot` prefixes <@bot>.

        reply_to makes it a reply (message_reference); channel_id may be a thread the bot opened.
        Dispatch it with `await fake.post(message)`.
        """
        cid = channel_id or self.channel_id
        text = f"<@{self.app_id}> {content}" if mention_bot else content
        message = self._new_message(cid, {"content": text}, author=author,
                                    message_type=REPLY if reply_to is not None else 0)
        if mention_bot:
            message["mentions"] = [self.bot_user.user_payload()]
        if reply_to is not None:
            target = self._resolve_message(reply_to)
            message["message_reference"] = {"type": 0, "message_id": target["id"], "channel_id": target["channel_id"],
                                            "guild_id": str(self.guild_id)}
        return copy.deepcopy(message)

    async def post(self, message: dict[str, Any]) -> int:
        """Deliver a user's message as MESSAGE_CREATE, as Discord would to this bot's intents.

        Without GUILD_MESSAGES nothing is sent (returns 0). Without the MESSAGE_CONTENT intent (enabled in
        the "portal", privileged_intents) Discord blanks the content unless the message mentions the bot.
        """
        conn = self._active
        if conn is None or not conn.intents & GUILD_MESSAGES:
            return 0
        payload = {**self._readable(message), "guild_id": str(self.guild_id),
                   "member": {k: v for k, v in self._member_of(message).items() if k not in ("user", "permissions")}}
        if "message_reference" in message:
            # Discord also sends the replied-to message; content blanked by the same rule.
            ref = self.messages.get(int(message["message_reference"]["message_id"]))
            payload["referenced_message"] = self._readable(ref) if ref else None
        return await self.dispatch("MESSAGE_CREATE", payload)

    def _member_of(self, message: dict[str, Any]) -> dict[str, Any]:
        author = next((u for u in self.members if str(u.id) == message["author"]["id"]), None)
        return (author or FakeUser(int(message["author"]["id"]), message["author"]["username"])).member_payload()

    def _readable(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message as the bot may read it: content, embeds and attachments only with the MESSAGE_CONTENT
        intent, unless the bot wrote it or it mentions the bot (Discord's rule, over gateway and REST)."""
        message = copy.deepcopy(message)
        mine = message["author"]["id"] == str(self.app_id)
        mentioned = any(m.get("id") == str(self.app_id) for m in message.get("mentions", []))
        if not (self.privileged_intents & MESSAGE_CONTENT or mine or mentioned):
            message.update(content="", embeds=[], attachments=[], components=[])
        return message

    def thread(self, thread_id: int | str) -> dict[str, Any]:
        """A thread the bot opened (channel payload)."""
        return copy.deepcopy(self.channels[int(thread_id)])

    def _start_thread(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        cid, mid = int(m["cid"]), int(m["mid"])
        starter = self.messages.get(mid)
        if cid != self.channel_id or starter is None or starter["channel_id"] != str(cid) \
                or starter["flags"] & EPHEMERAL:
            return _error(404, 10008, "Unknown Message")
        if mid in self.channels:
            return _error(400, 160004, "A thread has already been created for this message")
        body = rec.json or {}
        # Discord: a thread started from a message has that message's id.
        thread = {"id": str(mid), "type": PUBLIC_THREAD, "guild_id": str(self.guild_id), "parent_id": str(cid),
                  "name": body.get("name", "")[:100], "owner_id": str(self.app_id), "flags": 0,
                  "last_message_id": None, "rate_limit_per_user": body.get("rate_limit_per_user") or 0,
                  "message_count": 0, "member_count": 1, "total_message_sent": 0,
                  "thread_metadata": {"archived": False, "auto_archive_duration": body.get("auto_archive_duration",
                                                                                           1440),
                                      "archive_timestamp": _now_iso(), "locked": False, "invitable": True}}
        self.channels[mid] = thread
        starter["thread"] = thread
        if self._active is not None:
            created = {**thread, "newly_created": True}
            self._watched_sends.append(asyncio.ensure_future(self._send_dispatch(self._active, "THREAD_CREATE",
                                                                                 created)))
        return 201, copy.deepcopy(thread)

    # ------------------------------------------------------------------ message store

    def message(self, message_id: int | str) -> dict[str, Any]:
        """Latest JSON of a message the fake created or edited (a copy)."""
        mid = int(message_id)
        if mid not in self.messages:
            raise KeyError(f"no stored message {mid}; known: {sorted(self.messages)}; deleted: "
                           f"{self.deleted_message_ids}")
        return copy.deepcopy(self.messages[mid])

    def original_message(self, interaction: dict[str, Any]) -> dict[str, Any]:
        """Latest JSON of an interaction's original response (e.g. to press a button on it)."""
        state = self._interactions[int(interaction["id"])]
        if state.original_message_id is None:
            raise KeyError(f"interaction {state.id} has no original response message")
        return self.message(state.original_message_id)

    def _resolve_message(self, message: dict[str, Any] | int | str) -> dict[str, Any]:
        # Prefer the stored state so a press sees every edit; accept hand-built dicts as they are.
        if isinstance(message, dict):
            return self.message(message["id"]) if int(message["id"]) in self.messages else copy.deepcopy(message)
        return self.message(message)

    def _new_message(self, channel_id: int, body: dict[str, Any], *, author: FakeUser | None = None,
                     flags: int = 0, message_type: int = 0, files: dict[str, tuple[str, bytes]] | None = None,
                     interaction: _Interaction | None = None) -> dict[str, Any]:
        author = author or self.bot_user
        mid = snowflake()
        message: dict[str, Any] = {
            "id": str(mid), "channel_id": str(channel_id), "type": message_type, "content": "",
            "author": author.user_payload(), "embeds": [], "components": [], "attachments": [], "mentions": [],
            "mention_roles": [], "mention_everyone": False, "pinned": False, "tts": bool(body.get("tts")),
            "flags": flags, "timestamp": _now_iso(), "edited_timestamp": None,
        }
        if interaction is not None:
            message["webhook_id"] = message["application_id"] = str(self.app_id)
            message["interaction_metadata"] = {"id": str(interaction.id), "type": interaction.type,
                                               "user": interaction.user,
                                               "authorizing_integration_owners": {"0": str(self.guild_id)}}
            interaction.message_ids.add(mid)
        self._apply_body(message, body, files or {}, edit=False)
        self.messages[mid] = message
        return message

    def _apply_body(self, message: dict[str, Any], body: dict[str, Any], files: dict[str, tuple[str, bytes]],
                    *, edit: bool = True) -> dict[str, Any]:
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] if body[key] is not None else ("" if key == "content" else [])
        if "attachments" in body or files:
            message["attachments"] = self._attachments(message, body.get("attachments") or [], files)
        if body.get("flags") is not None:
            # Ephemerality is fixed when a message is created; an edit cannot change it.
            keep = message["flags"] & EPHEMERAL if edit else body["flags"] & EPHEMERAL
            message["flags"] = keep | (body["flags"] & ~EPHEMERAL & ~LOADING)
        if edit:
            message["flags"] &= ~LOADING
            message["edited_timestamp"] = _now_iso()
        return message

    def _attachments(self, message: dict[str, Any], specs: list[dict[str, Any]],
                     files: dict[str, tuple[str, bytes]]) -> list[dict[str, Any]]:
        existing = {a["id"]: a for a in message.get("attachments", [])}
        out = []
        for spec in specs:
            if str(spec["id"]) in existing:
                out.append(existing[str(spec["id"])])
            elif f"files[{spec['id']}]" in files:
                filename, data = files[f"files[{spec['id']}]"]
                attachment = self._store_attachment(int(message["channel_id"]), spec.get("filename", filename),
                                                    data, "application/octet-stream")
                out.append({**attachment, "description": spec.get("description")})
        return out

    def _store_attachment(self, channel_id: int, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
        aid = snowflake()
        self.cdn[aid] = (data, content_type)
        url = f"http://127.0.0.1:{self.port}/attachments/{channel_id}/{aid}/{yarl.URL.build(path=filename).raw_path}"
        return {"id": str(aid), "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": content_type}

    def attachment(self, filename: str, data: bytes, content_type: str = "text/plain",
                   channel_id: int | None = None) -> dict[str, Any]:
        """A file a user uploaded: its attachment payload, whose url/proxy_url the fake's CDN route serves.

        Pass it as an option value to chat_input (option type 11, resolved.attachments).
        """
        return _AttachmentPayload(self._store_attachment(channel_id or self.channel_id, filename, data,
                                                         content_type))

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body, files = None, {}
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    files[part.name or ""] = (part.filename or "", bytes(await part.read()))
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        api = request.path.startswith(API_PREFIX + "/")
        rec = RecordedRequest(index=len(self.requests), method=request.method,
                              path=request.path[len(API_PREFIX):] if api else request.path,
                              query=dict(request.query), json=body, headers=CIMultiDict(request.headers), files=files)
        if not api and request.method == "GET" and (cdn := _CDN_PATH.fullmatch(request.path)):
            return self._cdn(rec, int(cdn["aid"]))
        status, payload = self._route(rec) if api else (404, None)
        if status == 404 and payload is None:
            payload = {"message": "404: Not Found", "code": 0}
            self.unexpected.append(rec)
        rec.status, rec.response = status, payload
        self.requests.append(rec)
        self._notify()
        if status == 204:
            return web.Response(status=204)
        # Exactly "application/json": discord.py compares the header by equality, charset breaks it.
        return web.Response(status=status, body=json.dumps(payload).encode(),
                            headers={"Content-Type": "application/json"})

    def _cdn(self, rec: RecordedRequest, attachment_id: int) -> web.Response:
        # The CDN answers without Authorization, outside /api/v10; recorded so a test can wait for the download.
        data, content_type = self.cdn.get(attachment_id, (b"", "text/plain"))
        rec.status, rec.response = (200 if attachment_id in self.cdn else 404), None
        self.requests.append(rec)
        self._notify()
        if rec.status == 404:
            return web.Response(status=404, text="Not Found")
        return web.Response(status=200, body=data, headers={"Content-Type": content_type})

    def fail(self, method: str, path: str, status: int = 503, times: int | None = None) -> None:
        """Answer requests matching method and path (a regex over the path after /api/v10) with status instead:
        every time, or only the next `times`. Discord's own outages: 503 on PATCH …/messages/@original."""
        self.faults.append([method, re.compile(path), status, times])

    async def close_gateway(self, code: int, reason: str = "") -> None:
        """Close the bot's live gateway connection with a close code (4004: authentication failed)."""
        conn = self._active or self.connections[-1]
        await conn.ws.close(code=code, message=reason.encode())

    def _route(self, rec: RecordedRequest) -> tuple[int, Any]:
        for fault in self.faults:
            method, pattern, status, times = fault
            if method == rec.method and pattern.fullmatch(rec.path) and times != 0:
                if times is not None:
                    fault[3] = times - 1
                return _error(status, 0, f"{status}: Service Unavailable")
        for method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(rec.path)
            if match and method == rec.method:
                if auth and rec.headers.get("Authorization") != f"Bot {self.token}":
                    return _error(401, 0, "401: Unauthorized")
                return handler(rec, match.groupdict())
        return 404, None

    def _put_commands(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        if int(m["app"]) != self.app_id:
            return _error(403, 50001, "Missing Access")
        guild = int(m["guild"]) if m.get("guild") else None
        if guild is not None and guild not in (self.guild_id, OTHER_GUILD_ID):
            return _error(403, 50001, "Missing Access")
        echoed = []
        for cmd in rec.json or []:
            kind = cmd.get("type", 1)
            dmp = cmd.get("default_member_permissions")
            entry = {**cmd, "id": str(self._command_id(cmd["name"], kind, guild)), "application_id": str(self.app_id),
                     "version": str(snowflake()), "type": kind, "description": cmd.get("description", ""),
                     "default_member_permissions": None if dmp is None else str(dmp)}
            if guild is not None:
                entry["guild_id"] = str(guild)
            echoed.append(entry)
        if guild is None:
            self.global_commands = echoed
        else:
            self.guild_commands[guild] = echoed
        return 200, echoed

    def _get_commands(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        if m.get("guild"):
            return 200, self.guild_commands.get(int(m["guild"]), [])
        return 200, self.global_commands

    def _callback(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        state = self._interactions.get(int(m["iid"]))
        if state is None or state.token != m["token"]:
            return _error(404, 10062, "Unknown interaction")
        if state.response_type is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - state.dispatched_at > self.ack_deadline:
            return _error(404, 10062, "Unknown interaction")
        body = rec.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        allowed = {APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
                   MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE,
                                       MODAL},
                   MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
                   AUTOCOMPLETE: {AUTOCOMPLETE_RESULT}}.get(state.type, set())
        if kind not in allowed:
            return _error(400, 40043, f"callback type {kind} is invalid for interaction type {state.type}")
        state.response_type = kind
        resource: dict[str, Any] = {"type": kind}
        info: dict[str, Any] = {"id": str(state.id), "type": state.type}
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = data.get("flags") or 0
            if kind == DEFERRED_CHANNEL_MESSAGE:
                flags = (flags & EPHEMERAL) | LOADING
            message = self._new_message(state.channel_id, data if kind == CHANNEL_MESSAGE else {}, flags=flags,
                                        message_type=state.message_type, files=rec.files, interaction=state)
            state.original_message_id = int(message["id"])
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and state.component_message_id in self.messages:
            state.original_message_id = state.component_message_id
            message = self.messages[state.component_message_id]
            if kind == UPDATE_MESSAGE:
                self._apply_body(message, data, rec.files)
        else:
            message = None
        if message is not None:
            resource["message"] = copy.deepcopy(message)
            info.update(response_message_id=message["id"], response_message_loading=kind == DEFERRED_CHANNEL_MESSAGE,
                        response_message_ephemeral=bool(message["flags"] & EPHEMERAL))
        return 200, {"interaction": info, "resource": resource}

    def _webhook_state(self, m: dict[str, str]) -> _Interaction | None:
        if int(m["app"]) != self.app_id:
            return None
        state = next((s for s in self._interactions.values() if s.token == m["token"]), None)
        # Discord only creates the interaction webhook once the interaction is acknowledged.
        return state if state is not None and state.response_type is not None else None

    def _followup(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        state = self._webhook_state(m)
        if state is None:
            return _error(404, 10015, "Unknown Webhook")
        body = rec.json or {}
        original = self.messages.get(state.original_message_id or 0)
        if state.response_type == DEFERRED_CHANNEL_MESSAGE and original and original["flags"] & LOADING:
            # Discord: the first followup after a deferred response replaces the "thinking" message,
            # and keeps the defer's ephemerality whatever the followup asks for.
            return 200, copy.deepcopy(self._apply_body(original, body, rec.files))
        message = self._new_message(state.channel_id, body, flags=body.get("flags") or 0,
                                    message_type=state.message_type, files=rec.files, interaction=state)
        return 200, copy.deepcopy(message)

    def _webhook_message(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        state = self._webhook_state(m)
        if state is None:
            return _error(404, 10015, "Unknown Webhook")
        mid = state.original_message_id if m["mid"] == "@original" else int(m["mid"])
        owned = mid is not None and (mid == state.original_message_id or mid in state.message_ids)
        if not owned or mid not in self.messages:
            return _error(404, 10008, "Unknown Message")
        return self._message_verb(rec, mid)

    def _message_verb(self, rec: RecordedRequest, mid: int) -> tuple[int, Any]:
        if rec.method == "DELETE":
            del self.messages[mid]
            self.deleted_message_ids.append(mid)
            return 204, None
        if rec.method == "PATCH":
            self._apply_body(self.messages[mid], rec.json or {}, rec.files)
        return 200, copy.deepcopy(self.messages[mid])

    def _channel_send(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        cid = int(m["cid"])
        if cid != self.channel_id and cid not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        body = rec.json or {}
        flags = (body.get("flags") or 0) & ~EPHEMERAL  # only interaction responses can be ephemeral
        reference = body.get("message_reference")
        if reference is not None and int(reference["message_id"]) not in self.messages \
                and reference.get("fail_if_not_exists", True):
            return _error(400, 50035, "Invalid Form Body: message_reference: Unknown message")
        message = self._new_message(cid, {**body, "flags": flags}, files=rec.files,
                                    message_type=REPLY if reference else 0)
        if reference is not None:
            message["message_reference"] = {"type": 0, "message_id": str(reference["message_id"]),
                                            "channel_id": str(cid), "guild_id": str(self.guild_id)}
            message["referenced_message"] = self._readable(self.messages[int(reference["message_id"])]) \
                if int(reference["message_id"]) in self.messages else None
        if cid in self.channels:
            self.channels[cid]["message_count"] += 1
        return 200, copy.deepcopy(message)

    def _channel_message(self, rec: RecordedRequest, m: dict[str, str]) -> tuple[int, Any]:
        mid = int(m["mid"])
        message = self.messages.get(mid)
        if message is None or message["channel_id"] != m["cid"] or message["flags"] & EPHEMERAL:
            return _error(404, 10008, "Unknown Message")
        if rec.method != "GET" and message["author"]["id"] != str(self.app_id):
            return _error(403, 50005, "Cannot edit a message authored by another user")
        if rec.method == "GET":
            return 200, self._readable(message)
        return self._message_verb(rec, mid)


# ---------------------------------------------------------------------- harness


async def _drain_bot_tasks(timeout: float) -> None:
    # Bot.close() does not wait for in-flight commands; let them finish so they don't hit a closed session.
    prefixes = ("CommandTree-invoker", "discord-ui-view-dispatch")
    tasks = [t for t in asyncio.all_tasks() if not t.done() and t.get_name().startswith(prefixes)]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


@contextlib.asynccontextmanager
async def run_bot(bot: discord.Client | Callable[[], discord.Client], fake: FakeDiscord, *,
                  token: str | None = None, ready_timeout: float = 5.0,
                  drain_timeout: float = 2.0) -> AsyncIterator[Any]:
    """Log in to the fake, connect (reconnect=False), wait for ready; on exit drain, close, await connect."""
    with fake.patch():
        client = bot if isinstance(bot, discord.Client) else bot()
        if client._connection.guild_ready_timeout > 0.5:
            raise ValueError("create test bots with guild_ready_timeout=0.05, or on_ready waits 2 s")
        connect: asyncio.Task[None] | None = None
        failed = False
        try:
            await client.login(token or fake.token)
            connect = asyncio.create_task(client.connect(reconnect=False), name="fakediscord-connect")
            fake.watch(connect)
            ready = asyncio.create_task(client.wait_until_ready())
            done, _ = await asyncio.wait({connect, ready}, timeout=ready_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if connect in done:
                    connect.result()  # re-raises why the gateway task died
                    raise RuntimeError("connect() returned before the bot became ready")
                raise TimeoutError(f"bot not ready within {ready_timeout}s; gateway frames: "
                                   f"{[f.op for f in fake.gateway_frames]}")
            yield client
        except BaseException:
            failed = True
            raise
        finally:
            if drain_timeout > 0 and connect is not None:
                await _drain_bot_tasks(drain_timeout)
            await client.close()
            if connect is not None:
                try:
                    await asyncio.wait_for(connect, timeout=5.0)
                except Exception:
                    # A dead gateway task (e.g. a KeyError parsing a payload) must fail the test,
                    # unless the test already failed for its own reason.
                    if not failed:
                        raise
