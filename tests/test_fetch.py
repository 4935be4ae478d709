"""The safe fetcher: the private-address guard on every address and hop, and the limits on time, size and type."""

from __future__ import annotations

import asyncio

import pytest

from index import fetch
from index.fetch import FEED_TYPES, PAGE_TYPES, FetchError, Fetcher, FetchSettings, UrlRefused, check_url
from index.links import canonical_url, safe_url
from tests.newsserver import NewsServer

# The guard on: every test here runs with private addresses refused, except where it says otherwise.
GUARDED = FetchSettings(timeout=1.0, max_bytes=2**20, host_delay=0.0, ports=None, allow_private=False)
OPEN = FetchSettings(timeout=1.0, max_bytes=2**20, host_delay=0.0, ports=None, allow_private=True)


@pytest.fixture(scope="module")
def site():
    with NewsServer() as site:
        yield site


def fetch_one(url: str, settings: FetchSettings = GUARDED, resolve=None, accept=PAGE_TYPES, **kw):
    async def go():
        async with Fetcher(settings, resolve) as fetcher:
            return await fetcher.get(url, accept, **kw)

    return asyncio.run(go())


def refusal(url: str, **kw) -> str:
    with pytest.raises(UrlRefused) as refused:
        fetch_one(url, **kw)
    assert "\n" not in refused.value.message
    return refused.value.message


@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1/admin", "loopback"),
    ("http://127.1.2.3:8080/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://10.0.0.7/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0/", "reserved"),
])
def test_address_literals_that_are_not_public_are_refused_before_any_connection(url, kind):
    assert kind in refusal(url)


def test_localhost_and_its_variants_are_refused_on_what_they_resolve_to(site):
    before = len(site.requests)
    for host in ("localhost", "LocalHost"):
        message = refusal(f"http://{host}:{site.port}/news/harbour")
        assert f"{host.lower()} resolves to" in message and "loopback" in message
    assert len(site.requests) == before


def test_a_name_resolving_to_loopback_is_refused(site):
    async def resolve(host, port):
        return ["127.0.0.1"]

    message = refusal(f"http://news.example:{site.port}/news/harbour", resolve=resolve)
    assert message == ("refused: news.example resolves to 127.0.0.1, a loopback address "
                       "(set NEWSDESK_ALLOW_PRIVATE_URLS=1 to allow)")


def test_every_resolved_address_is_checked_not_only_the_first():
    async def resolve(host, port):     # refused before connecting: nothing is sent to the public address
        return ["93.184.216.34", "10.1.2.3"]

    assert "10.1.2.3, a private address" in refusal("http://mixed.example/", resolve=resolve)


def test_a_public_looking_url_redirecting_to_loopback_is_refused_at_the_hop(site, monkeypatch):
    real_check = fetch.check_address

    def public_first_hop(host, address, settings):   # pretend public.example is a public site (it is our server)
        if host != "public.example":
            real_check(host, address, settings)

    async def resolve(host, port):
        return ["127.0.0.1"]

    monkeypatch.setattr(fetch, "check_address", public_first_hop)
    before = len(site.requests)
    message = refusal(f"http://public.example:{site.port}/to-loopback", resolve=resolve)
    assert message.startswith("refused: 127.0.0.1 is a loopback address")
    assert f"(redirected to http://127.0.0.1:{site.port}/news/harbour)" in message
    assert [r.path for r in site.requests[before:]] == ["/to-loopback"]     # the target was never requested

    # The same through a name: the resolver refuses the second hop before connecting.
    async def resolve_all(host, port):
        return ["127.0.0.1"]

    before = len(site.requests)
    async def go():
        async with Fetcher(GUARDED, resolve_all) as fetcher:
            fetcher._session.headers["X-Target"] = f"http://sneaky.example:{site.port}/news/harbour"
            return await fetcher.get(f"http://public.example:{site.port}/to-loopback", PAGE_TYPES)

    with pytest.raises(UrlRefused, match="sneaky.example resolves to 127.0.0.1, a loopback address"):
        asyncio.run(go())
    assert [r.path for r in site.requests[before:]] == ["/to-loopback"]


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "only http and https URLs are fetched, not file:"),
    ("ftp://example.com/x", "only http and https URLs are fetched, not ftp:"),
    ("javascript:alert(1)", "only http and https URLs are fetched, not javascript:"),
    ("http://user:pw@example.com/", "not a valid http(s) URL"),
    ("http://exa mple.com/", "not a valid http(s) URL"),
])
def test_schemes_and_malformed_urls_are_refused(url, reason):
    with pytest.raises(UrlRefused) as refused:
        check_url(url, GUARDED)
    assert refused.value.message == f"refused: {reason}"


def test_ports_other_than_80_and_443_are_refused_unless_allowed():
    strict = FetchSettings(allow_private=True)
    with pytest.raises(UrlRefused, match=r"^refused: port 8080 is not allowed \(only 80, 443\)$"):
        check_url("http://example.com:8080/", strict)
    assert check_url("https://example.com/a", strict) == "https://example.com/a"
    assert FetchSettings.resolve({"NEWSDESK_ALLOWED_PORTS": "8080"}).ports == {80, 443, 8080}
    assert FetchSettings.resolve({"NEWSDESK_ALLOWED_PORTS": "any"}).ports is None
    assert FetchSettings.resolve({"NEWSDESK_ALLOW_PRIVATE_URLS": "1"}).allow_private
    assert not FetchSettings.resolve({}).allow_private


def test_allow_private_lifts_the_address_rule_and_connects_to_the_checked_address(site):
    asked = []

    async def resolve(host, port):     # the connection goes where the checked answer says, nowhere else
        asked.append(host)
        return ["127.0.0.1"]

    page = fetch_one(f"http://news.example:{site.port}/news/harbour", OPEN, resolve)
    assert page.status == 200 and b"Harbour reopens" in page.body and asked == ["news.example"]


def test_errors_are_one_line_reasons(site):
    def reason(path, accept=PAGE_TYPES):
        with pytest.raises(FetchError) as failed:
            fetch_one(site.base + path, OPEN, accept=accept)
        return failed.value.message, failed.value.transient

    assert reason("/missing") == ("HTTP 404 Not Found", False)
    assert reason("/broken") == ("HTTP 500 Internal Server Error", True)
    assert reason("/slow") == ("timed out after 1 s", True)
    assert reason("/huge") == ("too large (more than 1.0 MiB; stopped reading)", False)
    assert reason("/loop")[0].startswith("redirect loop")
    assert reason("/report.pdf") == ("not a web page (content type application/pdf)", False)
    assert reason("/news/harbour", accept=("application/rss+xml",)) == ("not a feed (content type text/html)", False)


def test_conditional_get_is_answered_not_modified(site):
    first = fetch_one(site.base + "/atom.xml", OPEN, accept=FEED_TYPES)
    again = fetch_one(site.base + "/atom.xml", OPEN, accept=FEED_TYPES, etag=first.etag)
    assert (first.status, again.status, again.body) == (200, 304, b"")
    assert site.requests[-1].headers["If-None-Match"] == first.etag


def test_per_host_delay_spaces_requests(site):
    async def go():
        async with Fetcher(FetchSettings(host_delay=0.3, allow_private=True, ports=None)) as fetcher:
            started = asyncio.get_running_loop().time()
            for _ in range(3):
                await fetcher.get(site.base + "/news/school", PAGE_TYPES)
            return asyncio.get_running_loop().time() - started

    assert asyncio.run(go()) >= 0.6


def test_urls_are_made_safe_to_link():
    assert safe_url("https://example.com/a (b)<c>") is None              # whitespace: not a URL
    assert safe_url("https://example.com/a)b<c>[d]") == "https://example.com/a%29b%3Cc%3E%5Bd%5D"
    assert safe_url("https://Example.COM/x?q=1#f") == "https://example.com/x?q=1#f"
    assert safe_url("https://example.com/a\nb") is None
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("//example.com/a") is None
    assert safe_url(42) is None
    assert canonical_url("https://Example.com/news/a?utm_source=rss&id=3#top") == "https://example.com/news/a?id=3"
