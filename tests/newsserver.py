"""A news site on loopback for the fetch and feed tests: feeds, realistic pages, and every way a fetch goes wrong.

Runs http.server in a thread on a free port of 127.0.0.1; records each request (path and headers) and
the status it was answered with, so tests can assert conditional requests and 304s.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)


def news_page(slug: str, title: str, outlet: str, date: str, author: str, paragraphs: list[str],
              heading: str | None = None, charset: str = "utf-8", base: str = "") -> str:
    """A page as news sites serve it: cookie banner, menu, share buttons, related links, comments, paywall."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs[:2])
    if heading:
        body += f"\n<h2>{heading}</h2>"
    body += "\n" + "\n".join(f"<p>{p}</p>" for p in paragraphs[2:])
    return f"""<!doctype html><html lang="en"><head><meta charset="{charset}">
<title>{title} | {outlet}</title>
<meta property="og:title" content="{title}">
<meta property="og:site_name" content="{outlet}">
<meta property="og:url" content="{base}/news/{slug}">
<meta property="article:published_time" content="{date}T08:00:00Z">
<meta name="author" content="{author}">
<link rel="canonical" href="{base}/news/{slug}">
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle","headline":"{title}",
"datePublished":"{date}T08:00:00Z","author":{{"@type":"Person","name":"{author}"}},
"publisher":{{"@type":"Organization","name":"{outlet}"}}}}</script>
<style>.cookie-banner {{ position: fixed }}</style>
</head><body>
<div id="cookie-banner" class="cookie-banner"><p>We use cookies to improve your experience on our site. By continuing you accept our cookie policy.</p><button>Accept all cookies</button></div>
<header><nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/subscribe">Subscribe</a></li></ul></nav></header>
<h2 class="promo">Subscribe</h2>
<main><article>
<h1>{title}</h1>
<div class="byline">By {author}</div>
<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on X</a> <a href="#">Email this article</a></div>
{body}
<div class="paywall"><p>Subscribe to read the rest of this article. Already a subscriber? Log in.</p></div>
</article>
<aside class="related"><h3>Related stories</h3><ul><li><a href="/a">Storm batters the coast again</a></li><li><a href="/b">Ferry timetable changes announced</a></li></ul></aside>
<section id="comments" class="comments"><h3>Comments</h3><div class="comment"><p>Great news for the town, finally! Who pays for it though?</p></div></section>
</main>
<footer><p>&copy; 2024 {outlet}. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>"""


HARBOUR = dict(slug="harbour", title="Harbour reopens after storm repairs", outlet="The Qwerty Gazette",
               date="2024-03-05", author="Jane Roe", heading="Fishermen relieved", paragraphs=[
                   "The qwerty harbour reopened on Tuesday after a week of repairs to the storm-damaged north quay, officials said.",
                   "Engineers found deep cracks in the quay wall and replaced two loading cranes before the first ferry was allowed to dock.",
                   "Fishermen who had been unable to land their catch for eight days said the closure had cost them thousands of pounds.",
                   "\u201cWe lost a whole week of work, but at least the quay is safe now,\u201d said one skipper."])
BRIDGE = dict(slug="bridge", title="Zanzibar bridge vote delayed again", outlet="Coastal Courier",
              date="2024-04-11", author="Omar Said", heading="Council divided", paragraphs=[
                  "The council postponed its vote on the zanzibar footbridge for the third time on Thursday, citing rising steel prices.",
                  "Supporters say the bridge would cut the walk between the two market districts from forty minutes to ten.",
                  "Opponents on the council argued that the money would be better spent repairing the existing ferry pier.",
                  "A final decision is now expected before the summer recess, the council\u2019s chair told reporters."])
SCHOOL = dict(slug="school", title="Village school gets solar roof", outlet="Valley Post", date="2024-05-20",
              author="Ann Lee", heading=None, paragraphs=[
                  "The village school in Xylo switched on a solar roof on Monday that should cover most of its electricity needs.",
                  "Parents raised half of the cost at summer fairs over three years; a regional grant paid for the rest.",
                  "The head teacher said the savings would pay for a second teaching assistant from September."])
LATIN1 = dict(slug="cafe", title="Caf\u00e9 owners protest new kiosk rules", outlet="Le Journal du Quai",
              date="2024-06-02", author="Ren\u00e9 Dupont", heading=None, paragraphs=[
                  "The caf\u00e9 owners of the old port marched to the town hall on Sunday against the new kiosk rules.",
                  "They say the rules, which ban terraces after ten in the evening, would halve their summer takings.",
                  "The mayor's office said the rules answered complaints from residents about noise."])
GOOD = (HARBOUR, BRIDGE, SCHOOL, LATIN1)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int = 0


@dataclass
class NewsSite:
    """Routes by path; state shared with the handler threads."""

    base: str = ""
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slow_seconds: float = 3.0
    flaky_served: int = 0

    def page(self, spec: dict, charset: str = "utf-8") -> bytes:
        return news_page(base=self.base, charset=charset, **spec).encode(charset)

    def item(self, link: str, title: str) -> str:
        return f"<item><title>{title}</title><link>{self.base}{link}</link><pubDate>Tue, 05 Mar 2024 08:00:00 GMT</pubDate></item>"

    def rss2(self) -> bytes:
        items = [self.item("/news/harbour", "Harbour reopens"), self.item("/news/cafe", "Caf\u00e9 owners protest"),
                 self.item("/missing", "A page that is gone"), self.item("/broken", "A server error"),
                 self.item("/slow", "A slow page"), self.item("/huge", "A huge page"),
                 self.item("/loop", "A redirect loop"), self.item("/report.pdf", "A PDF"),
                 self.item("/news/harbour?utm_source=rss", "Harbour reopens (again)")]
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Qwerty Gazette</title>'
                f'<link>{self.base}/</link><description>News</description>{"".join(items)}</channel></rss>').encode()

    def rss1(self) -> bytes:
        return (f'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                f'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="{self.base}/"><title>Valley Post</title>'
                f'<link>{self.base}/</link><description>Valley news</description></channel>'
                f'<item rdf:about="{self.base}/news/school"><title>Solar roof</title><link>{self.base}/news/school</link></item>'
                f'</rdf:RDF>').encode()

    def atom(self) -> bytes:
        entry = ('<entry><title>{t}</title><link href="{b}{l}"/><id>{b}{l}</id><updated>2024-04-11T08:00:00Z</updated></entry>')
        entries = entry.format(t="Bridge vote delayed", b=self.base, l="/news/bridge") + \
            entry.format(t="Bridge vote delayed (mirror)", b=self.base, l="/mirror/bridge")
        return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Coastal Courier</title>'
                f'<id>{self.base}/</id><updated>2024-04-11T08:00:00Z</updated>{entries}</feed>').encode()

    def big_feed(self) -> bytes:
        items = "".join(self.item(f"/many/{i}", f"Story {i}") for i in range(500))
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Many</title>{items}</channel></rss>'.encode()

    def many_page(self, number: int) -> bytes:
        words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
        name = "-".join(words[int(d)] for d in f"{number:03d}")
        return news_page(slug=f"many-{number}", title=f"Story number {name}", outlet="Many Wire", date="2024-01-01",
                         author="Wire", base=self.base, paragraphs=[
                             f"This is the body of story {name}, written by the wire desk for the test of long feeds.",
                             f"Story {name} has a second paragraph so that it reads like an article of the wire."]).encode()


class _Handler(BaseHTTPRequestHandler):
    site: NewsSite

    def log_message(self, format, *args):   # quiet: the tests read self.site.requests instead
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.seen.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _conditional(self, body: bytes, content_type: str) -> None:
        etag = f'"v1-{len(body)}"'
        if self.headers.get("If-None-Match") == etag or self.headers.get("If-Modified-Since") == LAST_MODIFIED:
            self._send(304, headers={"ETag": etag})
            return
        self._send(200, body, content_type, {"ETag": etag, "Last-Modified": LAST_MODIFIED})

    def do_GET(self) -> None:
        site = self.site
        self.seen = Seen(self.path, dict(self.headers.items()))
        with site.lock:
            site.requests.append(self.seen)
        path = self.path.split("?", 1)[0]
        specs = {f"/news/{spec['slug']}": spec for spec in (HARBOUR, BRIDGE, SCHOOL)}
        if path == "/rss2.xml":
            self._conditional(site.rss2(), "application/rss+xml")
        elif path == "/rss1.rdf":
            self._conditional(site.rss1(), "application/rdf+xml")
        elif path == "/atom.xml":
            self._conditional(site.atom(), "application/atom+xml")
        elif path == "/many.xml":
            self._conditional(site.big_feed(), "application/rss+xml")
        elif path == "/flaky.xml":          # a feed when it is added, broken ever after
            with site.lock:
                site.flaky_served += 1
                first = site.flaky_served == 1
            if first:
                self._send(200, site.rss1(), "application/rss+xml")
            else:
                self._send(200, b"<rss><channel><title>Broken</title><item><title>x</tit", "application/rss+xml")
        elif path == "/malformed.xml":
            self._send(200, b"<rss><channel><title>Broken</title><item><title>x</tit", "application/rss+xml")
        elif path in specs:
            self._send(200, site.page(specs[path]))
        elif path == "/mirror/bridge":      # another URL, the same story: only its text gives it away
            self._send(200, site.page(dict(BRIDGE, slug="mirror-bridge")))
        elif path == "/news/cafe":          # Latin-1, said so in the header only
            self._send(200, site.page(LATIN1, charset="iso-8859-1"), "text/html; charset=iso-8859-1")
        elif path.startswith("/many/"):
            self._send(200, site.many_page(int(path.rsplit("/", 1)[1])))
        elif path == "/broken":
            self._send(500, b"oops")
        elif path == "/slow":
            time.sleep(site.slow_seconds)
            self._send(200, site.page(HARBOUR))
        elif path == "/huge":               # 30 MB, streamed without a length: the reader must stop by itself
            self.seen.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            chunk = b"<p>" + b"x" * 65_000 + b"</p>\n"
            try:
                for _ in range(30 * 2**20 // len(chunk)):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop2"})
        elif path == "/loop2":
            self._send(302, headers={"Location": "/loop"})
        elif path == "/to-loopback":
            self._send(302, headers={"Location": self.headers.get("X-Target", f"http://127.0.0.1:{self.server.server_port}/news/harbour")})
        elif path == "/report.pdf":
            self._send(200, b"%PDF-1.4 not really", "application/pdf")
        else:
            self._send(404, b"not found")


class NewsServer:
    """`with NewsServer() as site:` serves on 127.0.0.1 at site.base, stopped on leaving."""

    def __init__(self) -> None:
        self.site = NewsSite()
        handler = type("Handler", (_Handler,), {"site": self.site})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.site.base, self.site.port = f"http://127.0.0.1:{self.port}", self.port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> NewsSite:
        self._thread.start()
        return self.site

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
