"""Someone's input echoed back (a file name, a question, an ID), made inert for a terminal or Discord."""

from __future__ import annotations

import re

__all__ = ("clean", "inert")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean(text: str, limit: int = 80) -> str:
    """Someone's input made safe to echo (a file name, a question, an ID): control and escape characters
    dropped, line breaks shown as \\n, cut to about `limit` characters. Discord callers still escape
    markdown."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def inert(text: str, limit: int = 80) -> str:
    """clean(), in quotes: for echoing input inside a sentence."""
    return f"“{clean(text, limit)}”"
