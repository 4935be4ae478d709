"""Safe HTTP fetching: public addresses only (every resolved address, every redirect hop), bounded in time and size.

A URL a Discord member can make the bot fetch is an attack surface: a link to 127.0.0.1, to a cloud
metadata address (169.254.169.254) or to a name that resolves to the office network must be refused
before a single byte is sent. The address check runs inside the HTTP client's resolver, so the address
checked is the address connected to: a name cannot resolve to a public address for the check and to a
private one for the connection (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp

from .config import environment
from .errors import NewsdeskError
from .links import safe_url

__all__ = ("FetchSettings", "Fetcher", "Fetched", "FetchError", "UrlRefused", "check_url", "check_address",
           "PAGE_TYPES", "FEED_TYPES")

_log = logging.getLogger(__name__)

PAGE_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
              "text/xml", "application/feed+xml", "text/html", "text/plain")   # servers label feeds loosely
USER_AGENT = "Newsdesk/0.1 (news fact desk; feed reader)"

Resolve = Callable[[str, int], Awaitable[list[str]]]
"""resolve(host, port) -> the addresses it names; the default asks the system through loop.getaddrinfo."""


class FetchError(NewsdeskError):
    """A URL could not be fetched; the message is the reason, fit for a report line."""

    def __init__(self, message: str, transient: bool = False) -> None:
        self.transient = transient      # worth trying again later (a timeout, a 5xx), not a property of the URL
        super().__init__(message)


class UrlRefused(FetchError):
    """The URL is not one Newsdesk fetches: scheme, port, or an address that is not public."""


class _AddressRefused(OSError):
    """Raised inside the client's resolver; an OSError so aiohttp passes it through as the cause."""


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 20.0              # seconds for one request, headers and body
    max_bytes: int = 5 * 2**20         # a page or a feed larger than this is not read further
    host_delay: float = 1.0            # seconds between two requests to one host
    max_redirects: int = 5
    allow_private: bool = False        # NEWSDESK_ALLOW_PRIVATE_URLS=1: for tests and a desk on a private network
    ports: frozenset[int] | None = frozenset({80, 443})     # None: any port
    max_items: int = 25                # new articles taken from one feed in one fetch

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None) -> "FetchSettings":
        """From NEWSDESK_FETCH_TIMEOUT, _MAX_BYTES, _HOST_DELAY, _MAX_ITEMS, NEWSDESK_ALLOW_PRIVATE_URLS and
        NEWSDESK_ALLOWED_PORTS ("8080,8443" added to 80 and 443, or "any"), environment or `.env`."""
        values = environment(env)

        def number(name: str, default: float) -> float:
            raw = values.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                _log.warning("%s=%r is not a number; using %s", name, raw, default)
                return default

        ports_raw = values.get("NEWSDESK_ALLOWED_PORTS", "").strip().lower()
        ports: frozenset[int] | None = frozenset({80, 443})
        if ports_raw == "any":
            ports = None
        elif ports_raw:
            ports = frozenset({80, 443} | {int(p) for p in ports_raw.replace(" ", "").split(",") if p.isdigit()})
        return cls(timeout=number("NEWSDESK_FETCH_TIMEOUT", cls.timeout),
                   max_bytes=int(number("NEWSDESK_FETCH_MAX_BYTES", cls.max_bytes)),
                   host_delay=number("NEWSDESK_FETCH_HOST_DELAY", cls.host_delay),
                   max_items=max(1, int(number("NEWSDESK_FETCH_MAX_ITEMS", cls.max_items))),
                   allow_private=values.get("NEWSDESK_ALLOW_PRIVATE_URLS", "").strip().lower() in ("1", "true", "yes"),
                   ports=ports)


@dataclass
class Fetched:
    url: str                           # after redirects
    status: int                        # 200, or 304 for a conditional request answered "not modified"
    body: bytes
    content_type: str
    charset: str | None
    headers: Mapping[str, str] = field(default_factory=dict)     # case-insensitive as received

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("Last-Modified")

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def check_url(url: str, settings: FetchSettings) -> str:
    """The URL if its form may be fetched (scheme, host, port); the address rule is checked on resolving."""
    safe = safe_url(url)
    if safe is None:
        scheme = urlsplit(url.strip()).scheme if isinstance(url, str) else ""
        if scheme and scheme.lower() not in ("http", "https"):
            raise UrlRefused(f"refused: only http and https URLs are fetched, not {scheme}:")
        raise UrlRefused("refused: not a valid http(s) URL")
    parts = urlsplit(safe)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if settings.ports is not None and port not in settings.ports:
        raise UrlRefused(f"refused: port {port} is not allowed (only {', '.join(map(str, sorted(settings.ports)))})")
    host = parts.hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:          # the client does not resolve an address literal: check it here
        check_address(host, str(literal), settings)
    return safe


def check_address(host: str, address: str, settings: FetchSettings) -> None:
    """Refuse an address that is not public, unless private URLs are allowed."""
    if settings.allow_private:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])    # an IPv6 zone ("fe80::1%eth0") is no part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped          # ::ffff:127.0.0.1 is loopback too
    # Most specific first: 169.254.0.0/16 is also "private" to Python, 0.0.0.0 too.
    kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local else "multicast" if ip.is_multicast
            else "reserved" if ip.is_reserved or ip.is_unspecified else "private" if ip.is_private
            else "non-public" if not ip.is_global else None)
    if kind:
        shown = f"{host} is" if host == address.split("%", 1)[0] else f"{host} resolves to {address},"
        raise UrlRefused(f"refused: {shown} a {kind} address (set NEWSDESK_ALLOW_PRIVATE_URLS=1 to allow)")


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    """Resolves a host, refuses it if ANY of its addresses is not public, and hands the client exactly the
    addresses it checked: the connection goes to a checked address or nowhere."""

    def __init__(self, settings: FetchSettings, resolve: Resolve) -> None:
        self._settings = settings
        self._resolve = resolve

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        try:
            addresses = await self._resolve(host, port)
        except OSError as e:
            raise OSError(f"cannot resolve {host} ({e.strerror or e})") from e
        if not addresses:
            raise OSError(f"cannot resolve {host}")
        for address in addresses:
            try:
                check_address(host, address, self._settings)
            except UrlRefused as e:
                raise _AddressRefused(e.message) from None
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST} for address in addresses]

    async def close(self) -> None:
        return None


class Fetcher:
    """One session of fetching: `async with Fetcher(settings) as f: await f.get(url, PAGE_TYPES)`.

    resolve replaces the system resolver (tests map names to addresses with it). Requests to one host
    are spaced by settings.host_delay.
    """

    def __init__(self, settings: FetchSettings, resolve: Resolve | None = None) -> None:
        self.settings = settings
        self._resolve = resolve or _system_resolve
        self._session: aiohttp.ClientSession | None = None
        self._last_request: dict[str, float] = {}

    async def __aenter__(self) -> "Fetcher":
        connector = aiohttp.TCPConnector(resolver=_GuardedResolver(self.settings, self._resolve),
                                         use_dns_cache=False, limit_per_host=2)
        self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                              trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str, accept: tuple[str, ...], etag: str | None = None,
                  last_modified: str | None = None) -> Fetched:
        """GET url following at most max_redirects redirects, each hop checked like the first.

        Raises UrlRefused or FetchError with a one-line reason; a 304 to a conditional request is returned.
        """
        assert self._session is not None, "use Fetcher in `async with`"
        seen: set[str] = set()
        current = check_url(url, self.settings)
        for _ in range(self.settings.max_redirects + 1):
            seen.add(current)
            headers = {"Accept": ", ".join(accept[:4]) + ", */*;q=0.1"}
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            await self._wait_turn(current)
            fetched = await self._request(current, headers, accept)
            if isinstance(fetched, Fetched):
                return fetched
            target = urljoin(current, fetched)
            try:
                target = check_url(target, self.settings)
            except UrlRefused as e:
                raise UrlRefused(f"{e.message} (redirected to {target[:200]})") from None
            if target in seen:
                raise FetchError(f"redirect loop ({current} -> {target})")
            current = target
        raise FetchError(f"more than {self.settings.max_redirects} redirects")

    async def _wait_turn(self, url: str) -> None:
        host = urlsplit(url).netloc
        wait = self._last_request.get(host, -1e9) + self.settings.host_delay - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_request[host] = time.monotonic()

    async def _request(self, url: str, headers: dict[str, str], accept: tuple[str, ...]) -> Fetched | str:
        """The response, or the Location of a redirect."""
        assert self._session is not None
        limit = self.settings.max_bytes
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False, timeout=timeout) as response:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(f"HTTP {response.status} redirect without a Location")
                    return location
                if response.status == 304:
                    return Fetched(str(response.url), 304, b"", "", None, response.headers.copy())
                if response.status >= 400:
                    reason = response.reason or ""
                    raise FetchError(f"HTTP {response.status} {reason}".strip(), transient=response.status >= 500 or response.status == 429)
                content_type = response.content_type.lower()
                if content_type not in accept:
                    raise FetchError(f"not a {'web page' if accept is PAGE_TYPES else 'feed'} (content type {content_type or 'missing'})")
                if response.content_length is not None and response.content_length > limit:
                    raise FetchError(f"too large ({response.content_length / 2**20:.1f} MiB; the limit is {limit / 2**20:.1f} MiB)")
                body = bytearray()
                # Streamed, and abandoned as soon as it passes the limit: a 30 MB page costs at most the
                # limit plus one chunk, whatever Content-Length said (or did not say).
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise FetchError(f"too large (more than {limit / 2**20:.1f} MiB; stopped reading)")
                return Fetched(str(response.url), response.status, bytes(body), content_type, response.charset,
                               response.headers.copy())
        except aiohttp.ClientConnectorError as e:
            if isinstance(e.os_error, _AddressRefused):
                raise UrlRefused(str(e.os_error)) from None
            raise FetchError(f"cannot connect ({e.os_error.strerror or e.os_error})", transient=True) from None
        except asyncio.TimeoutError:
            raise FetchError(f"timed out after {self.settings.timeout:g} s", transient=True) from None
        except aiohttp.ClientError as e:
            raise FetchError(f"connection failed ({type(e).__name__}: {e})", transient=True) from None
