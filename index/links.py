"""Article URLs made safe to store and to print as a link: http(s) only, nothing that could break markdown."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ("safe_url", "canonical_url")

_log = logging.getLogger(__name__)

# Characters that end or nest a markdown link, or an autolink <...>: percent-encoded, so a URL taken
# from a page or a feed cannot close the citation's link early and open a second one of its own.
_ESCAPE = {c: f"%{ord(c):02X}" for c in "<>()[]\"'`\\{}|^"}
_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid)$", re.IGNORECASE)


def safe_url(value: object) -> str | None:
    """The URL fit to store and link, or None when it is not one.

    Only http and https with a host; no whitespace or control characters anywhere (a line break in a
    URL is how a second line of markdown gets in); no user:password@ (it makes a link read as another
    site); `<`, `>`, `(`, `)`, brackets, quotes and backslashes percent-encoded.
    """
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > 2048 or _FORBIDDEN.search(value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port          # raises ValueError for a port that is no number
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    if port is not None and not 0 < port < 65536:
        return None
    host = parts.netloc.lower()
    rest = "".join(_ESCAPE.get(c, c) for c in urlunsplit(("", "", parts.path, parts.query, parts.fragment)))
    return f"{parts.scheme.lower()}://{host}{rest}"


def canonical_url(value: str) -> str:
    """The form two links to one article share: no fragment, no tracking parameters, host lower case."""
    parts = urlsplit(value)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, ""))
