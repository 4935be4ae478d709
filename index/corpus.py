"""Corpus files to articles: .txt, .md (front matter), .html and .jsonl, cleaned the way scraped news needs."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

__all__ = ("Article", "Paragraph", "Problem", "CorpusFile", "scan_corpus", "parse_file", "MAX_FILE_BYTES")

_log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Paragraph:
    text: str
    section: str | None = None  # the heading above it, if any: context, never a passage itself


@dataclass
class Article:
    source: str                  # corpus-relative path, plus "#id" for a line of a .jsonl file
    file: str                    # corpus-relative path of the file it came from
    title: str
    paragraphs: list[Paragraph]
    url: str | None = None
    outlet: str | None = None
    published: str | None = None  # ISO date when it could be read
    author: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file or line: reported, skipped (or read with a warning), never fatal."""

    file: str
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}" + ("" if self.skipped else " (read anyway)")


@dataclass
class CorpusFile:
    path: Path
    relative: str
    digest: str
    size: int
    data: bytes = field(repr=False, default=b"")


def scan_corpus(root: Path) -> tuple[list[CorpusFile], list[Problem]]:
    """Every article file under root, recursively, in a stable order, with its content hash.

    root may also be a single file (a .jsonl of many articles, say).
    """
    files: list[CorpusFile] = []
    problems: list[Problem] = []
    if root.is_file():
        paths, base = [root], root.parent
    else:
        paths, base = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES), root
    for path in paths:
        relative = path.relative_to(base).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                problems.append(Problem(relative, f"file too large ({size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB)"))
                continue
            data = path.read_bytes()
        except OSError as e:
            problems.append(Problem(relative, f"cannot be read ({e.strerror or e})"))
            continue
        files.append(CorpusFile(path, relative, hashlib.sha256(data).hexdigest(), size, data))
    return files, problems


def parse_file(file: CorpusFile) -> tuple[list[Article], list[Problem]]:
    """The articles in one file and what was wrong with it."""
    problems: list[Problem] = []
    if not file.data.strip():
        return [], [Problem(file.relative, "empty file")]
    if b"\x00" in file.data[:8192]:
        return [], [Problem(file.relative, "binary file, not text")]
    text, warning = _decode(file.data)
    if warning:
        problems.append(Problem(file.relative, warning, skipped=False))
    suffix = file.path.suffix.lower()
    if suffix == ".jsonl":
        articles, line_problems = _parse_jsonl(text, file.relative)
        problems += line_problems
    elif suffix in (".html", ".htm"):
        articles = [_parse_html(text, file.relative)]
    elif suffix in (".md", ".markdown"):
        articles = [_parse_markdown(text, file.relative)]
    else:
        articles = [_parse_text(text, file.relative)]
    kept = []
    for article in articles:
        if article.paragraphs:
            kept.append(article)
        else:
            problems.append(Problem(article.source, "no paragraphs of text"))
    return kept, problems


def _decode(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        # Older scrapes are often Windows-1252; latin-1 decodes anything, as a last resort.
        for encoding in ("cp1252", "latin-1"):
            try:
                return data.decode(encoding), f"not UTF-8 (byte {e.start}); read as {encoding}"
            except UnicodeDecodeError:
                continue
    raise AssertionError("latin-1 decodes every byte string")


# -- plain text ----------------------------------------------------------------------------------

_DATELINE = re.compile(
    r"^(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?"
    r"(?:(?P<d1>\d{1,2})[/.-](?P<m1>\d{1,2})[/.-](?P<y1>\d{4})"
    r"|(?P<y2>\d{4})-(?P<m2>\d{2})-(?P<d2>\d{2})"
    r"|(?P<month3>[a-z]+)\s+(?P<d3>\d{1,2}),?\s+(?P<y3>\d{4})"
    r"|(?P<d4>\d{1,2})\s+(?P<month4>[a-z]+),?\s+(?P<y4>\d{4}))$",
    re.IGNORECASE,
)
_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
_FINAL_PUNCTUATION = tuple(".!?:;\"'\u201d\u2019)]…")


def parse_date(line: str) -> str | None:
    """An ISO date when the whole line is a date ("Tuesday 16/04/2019", "April 16, 2019"), else None."""
    m = _DATELINE.match(line.strip())
    if not m:
        return None
    g = m.groupdict()
    try:
        if g["y1"]:   # day first, as the outlets in our corpus print it; month first if day-first is impossible
            day, month = int(g["d1"]), int(g["m1"])
            if month > 12 and day <= 12:
                day, month = month, day
            return date(int(g["y1"]), month, day).isoformat()
        if g["y2"]:
            return date(int(g["y2"]), int(g["m2"]), int(g["d2"])).isoformat()
        name, day, year = (g["month3"], g["d3"], g["y3"]) if g["y3"] else (g["month4"], g["d4"], g["y4"])
        month = _MONTHS.get(name.lower()) or next((n for full, n in _MONTHS.items() if full.startswith(name.lower()) and len(name) >= 3), None)
        return date(int(year), month, int(day)).isoformat() if month else None
    except ValueError:
        return None


def _looks_like_heading(line: str) -> bool:
    words = line.split()
    return 0 < len(words) <= 12 and len(line) <= 100 and not line.endswith(_FINAL_PUNCTUATION) and line[0].isupper()


def _looks_like_headline(line: str) -> bool:
    return 0 < len(line.split()) <= 25 and len(line) <= 200 and not line.rstrip().endswith(".")


def _blocks(text: str) -> list[str]:
    """Paragraph texts: one a line, unless the file is hard-wrapped, when blank lines separate them."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    nonblank = [line for line in lines if line.strip()]
    wrapped = len(nonblank) >= 4 and max(len(line) for line in nonblank) <= 100 and "" in (l.strip() for l in lines)
    if not wrapped:
        return [line.strip() for line in nonblank]
    blocks, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            blocks.append(" ".join(current))
            current = []
    return blocks


def _parse_text(text: str, relative: str) -> Article:
    blocks = _blocks(text)
    title = None
    if blocks and _looks_like_headline(blocks[0]):
        title, blocks = blocks[0], blocks[1:]
    article = Article(relative, relative, title or "", [])
    _add_body(article, blocks)
    if not article.title:
        article.title = _derived_title(article, relative)
    return article


def _add_body(article: Article, blocks: list[str], headings: set[int] = frozenset(), guess: bool = True) -> None:
    """Paragraphs from text blocks: datelines become the date, headings context, repeats are dropped.

    guess=False trusts the blocks to be paragraphs (a .jsonl "paragraphs" list says so itself).
    """
    section = None
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        is_last = i == len(blocks) - 1
        if guess and article.published is None and (published := parse_date(block)):
            article.published = published
            continue
        if i in headings or (guess and not is_last and _looks_like_heading(block)):
            section = block.lstrip("#").strip()
            continue
        if block in seen:      # a photo caption printed twice, a pasted paragraph: index it once
            continue
        seen.add(block)
        article.paragraphs.append(Paragraph(block, section))


def _derived_title(article: Article, relative: str) -> str:
    if not article.paragraphs:
        return Path(relative).stem
    first = article.paragraphs[0].text
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(sentence) <= 90:
        return sentence.rstrip(" .")
    return sentence[:90].rsplit(" ", 1)[0] + "…"


# -- markdown ------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_META_KEYS = {"title", "url", "outlet", "published", "author", "date", "source", "link"}


def _parse_markdown(text: str, relative: str) -> Article:
    meta: dict[str, str] = {}
    m = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    body = text.replace("\r\n", "\n")
    if m:
        body = body[m.end():]
        for line in m.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in _META_KEYS:
                meta[key.strip().lower()] = value.strip().strip("'\"")
    blocks, headings = [], set()
    title = meta.get("title")
    for block in re.split(r"\n\s*\n", body):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            heading = lines[0].lstrip("#").strip()
            if title is None and lines[0].startswith("# "):
                title = heading
            else:
                headings.add(len(blocks))
                blocks.append(heading)
            lines = lines[1:]
            if not lines:
                continue
        blocks.append(_MD_EMPHASIS.sub(r"\2", _MD_LINK.sub(r"\1", " ".join(line.lstrip("-*> ").strip() for line in lines))))
    article = Article(relative, relative, title or "", [], url=meta.get("url") or meta.get("link"),
                      outlet=meta.get("outlet") or meta.get("source"), author=meta.get("author"),
                      published=_iso(meta.get("published") or meta.get("date")))
    _add_body(article, blocks, headings)
    article.title = article.title or _derived_title(article, relative)
    return article


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    parsed = parse_date(value)
    if parsed:
        return parsed
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return value  # keep what the article says rather than lose it


# -- html ----------------------------------------------------------------------------------------

class _ArticleHTML(HTMLParser):
    _SKIP = {"script", "style", "nav", "footer", "aside", "noscript", "template", "form"}
    _BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "figcaption"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: str | None = None
        self.blocks: list[tuple[str, str]] = []  # (tag, text)
        self._skip_depth = 0
        self._tag: str | None = None
        self._text: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title, self._text = True, []
        elif tag == "meta":
            key = (a.get("property") or a.get("name") or "").lower()
            if a.get("content"):
                self.meta.setdefault(key, a["content"])
        elif tag == "link" and a.get("rel") == "canonical" and a.get("href"):
            self.meta.setdefault("canonical", a["href"])
        elif tag == "br" and self._tag:
            self._text.append(" ")
        elif tag in self._BLOCKS and not self._skip_depth:
            self._flush()
            self._tag, self._text = tag, []

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title" and self._in_title:
            self.title = " ".join("".join(self._text).split())
            self._in_title, self._text = False, []
        elif tag == self._tag:
            self._flush()

    def handle_data(self, data):
        if (self._tag or self._in_title) and not self._skip_depth:
            self._text.append(data)

    def _flush(self):
        if self._tag:
            text = " ".join("".join(self._text).split())
            if text:
                self.blocks.append((self._tag, text))
        self._tag, self._text = None, []

    def close(self):
        super().close()
        self._flush()


def _parse_html(text: str, relative: str) -> Article:
    parser = _ArticleHTML()
    parser.feed(text)
    parser.close()
    meta = parser.meta
    title = meta.get("og:title") or next((t for tag, t in parser.blocks if tag == "h1"), None) or parser.title
    blocks, headings = [], set()
    for tag, block in parser.blocks:
        if tag == "h1" and block == title:
            continue
        if tag.startswith("h"):
            headings.add(len(blocks))
        blocks.append(block)
    article = Article(relative, relative, title or "", [], url=meta.get("og:url") or meta.get("canonical"),
                      outlet=meta.get("og:site_name"), author=meta.get("author"),
                      published=_iso(meta.get("article:published_time") or meta.get("date")))
    _add_body(article, blocks, headings)
    article.title = article.title or _derived_title(article, relative)
    return article


# -- jsonl ---------------------------------------------------------------------------------------

def _parse_jsonl(text: str, relative: str) -> tuple[list[Article], list[Problem]]:
    articles, problems = [], []
    seen_ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{relative} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem(where, f"not valid JSON ({e.msg})"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(where, "not a JSON object"))
            continue
        paragraphs = record.get("paragraphs")
        if paragraphs is None and isinstance(record.get("text"), str):
            paragraphs = _blocks(record["text"]) if "\n\n" not in record["text"] else [
                " ".join(p.split()) for p in re.split(r"\n\s*\n", record["text"]) if p.strip()]
        if not isinstance(paragraphs, list) or not all(isinstance(p, str) for p in paragraphs):
            problems.append(Problem(where, 'needs "text" (a string) or "paragraphs" (a list of strings)'))
            continue
        article_id = str(record.get("id") or number)
        if article_id in seen_ids:
            problems.append(Problem(where, f"duplicate id {article_id!r}"))
            continue
        seen_ids.add(article_id)
        source = f"{relative}#{article_id}"
        article = Article(source, relative, str(record.get("title") or ""), [], url=record.get("url"),
                          outlet=record.get("outlet"), author=record.get("author"),
                          published=_iso(str(record["published"])) if record.get("published") else None)
        _add_body(article, [p.strip() for p in paragraphs if p.strip()], guess="paragraphs" not in record)
        article.title = article.title or _derived_title(article, source)
        articles.append(article)
    return articles, problems
