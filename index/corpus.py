"""Corpus files to articles: .txt, .md (front matter), .html and .jsonl, cleaned the way scraped news needs."""

from __future__ import annotations

import codecs
import errno
import hashlib
import json
import logging
import os
import re
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Mapping

import yaml

from .extract import extract_html
from .inert import clean
from .links import safe_url

__all__ = ("Article", "Paragraph", "Problem", "CorpusFile", "scan_corpus", "parse_file", "parse_bytes", "decode_page",
           "MAX_FILE_BYTES", "SUFFIXES")

_log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")
MAX_FILE_BYTES = 50 * 1024 * 1024

# Above this share of control, unassigned or undecodable characters a file is binary, not text. Measured:
# 3,573 real text files (the corpus, Python sources, docs, licences, READMEs) stay under 0.005 %; 505
# images, compressed files and programs with their NULs stripped start at 8.6 %; random bytes at 13 %
# (the lowest of 500 random 200-byte files: 7 %).
BINARY_SHARE = 0.05
_SAMPLE_CHARS = 64 * 1024


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
        # A file name can hold anything a file system allows, escape sequences and newlines included.
        return f"{clean(self.file, 200)}: {self.reason}" + ("" if self.skipped else " (read anyway)")


@dataclass
class CorpusFile:
    path: Path
    relative: str
    digest: str
    size: int
    data: bytes = field(repr=False, default=b"")     # read by parse_file when needed: scanning keeps no text
    stat: str | None = None     # size, mtime and inode when hashed, if the file had settled (see scan_corpus)

    def read(self) -> bytes:
        """The file's bytes. A file that changed since the scan is read as it is now, and its digest follows,
        so that what is stored as read matches what was parsed."""
        if not self.data:
            self.data = self.path.read_bytes()
            digest = hashlib.sha256(self.data).hexdigest()
            if digest != self.digest:       # changed since the scan: its stat then is not this content's
                self.digest, self.size, self.stat = digest, len(self.data), None
        return self.data


def scan_corpus(root: Path, known: Mapping[str, tuple[str, str | None]] | None = None) -> tuple[list[CorpusFile], list[Problem]]:
    """Every article file under root, recursively, in a stable order, with its content hash (a million
    passages' corpus is hashed a piece at a time; only the files a build parses are read whole, later).

    known: relative path -> (hash, stat) as the last build stored them. A file whose size, mtime and inode
    are what they were when it was hashed keeps its hash unread (as git does): at a million passages,
    hashing 180 MB was a third of a build that changes one article. A stat is only kept for a file that
    had not been written for SETTLED_S when it was hashed: a write within the same clock tick as the
    hashing could otherwise leave size and mtime as they were.

    root may also be a single file (a .jsonl of many articles, say). Symbolic links are followed, to
    files and folders outside root too; broken links and loops are reported rather than dropped.
    """
    known = known or {}
    files: list[CorpusFile] = []
    problems: list[Problem] = []
    if root.is_file():
        paths, base = [root], root.parent
    else:
        paths, base = _article_paths(root, problems), root
    for path in paths:
        relative = path.relative_to(base).as_posix()
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):    # a FIFO named x.txt would block the read for ever
                problems.append(Problem(relative, "not a regular file"))
                continue
            if st.st_size > MAX_FILE_BYTES:
                problems.append(Problem(relative, f"file too large ({st.st_size / 2**20:.0f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB)"))
                continue
            stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            settled = stamp if time.time() - st.st_mtime > SETTLED_S else None
            before = known.get(relative)
            if before is not None and before[1] is not None and before[1] == stamp:
                digest, size = before[0], st.st_size
            else:
                digest, size = _digest(path)
        except OSError as e:
            problems.append(Problem(relative, f"cannot be read ({e.strerror or e})"))
            continue
        files.append(CorpusFile(path, relative, digest, size, stat=settled))
    return files, problems


# A file last written longer ago than this, when it is hashed, keeps its stat for the next scan.
SETTLED_S = 2.0


def _digest(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
            size += len(piece)
    return h.hexdigest(), size


def _article_paths(root: Path, problems: list[Problem]) -> list[Path]:
    """The article files under root, hidden (dot) paths left out, sorted as paths (by their parts).

    Folders are read once each, known by (device, inode): the real tree first, then the folders its
    links lead to, so a folder is read under its real name, and a link back up the tree is reported
    instead of recursing until the path is too long.
    """
    def relative(path: str) -> str:
        return Path(path).relative_to(root).as_posix()

    def unreadable(e: OSError) -> None:
        problems.append(Problem(relative(e.filename), f"folder cannot be read ({e.strerror or e})"))

    seen: dict[tuple[int, int], str] = {}
    found: list[Path] = []
    pending = [str(root)]       # the corpus folder, then each linked folder met on the way
    while pending:
        for folder, dirnames, filenames in os.walk(pending.pop(0), onerror=unreadable):
            here = relative(folder)
            try:
                st = os.stat(folder)
            except OSError as e:    # gone or changed since it was listed
                problems.append(Problem(here, f"folder cannot be read ({e.strerror or e})"))
                dirnames.clear()
                continue
            first = seen.setdefault((st.st_dev, st.st_ino), here)
            if first != here:
                if first == "." or here.startswith(first + "/"):
                    reason = f"symbolic link loop (leads back to {'the corpus folder' if first == '.' else first})"
                else:
                    reason = f"the same folder as {first}, read there"
                problems.append(Problem(here, reason))
                dirnames.clear()
                continue
            names = sorted(d for d in dirnames if not d.startswith("."))
            pending += [os.path.join(folder, d) for d in names if os.path.islink(os.path.join(folder, d))]
            dirnames[:] = [d for d in names if not os.path.islink(os.path.join(folder, d))]
            for name in filenames:
                path, suffix = os.path.join(folder, name), os.path.splitext(name)[1].lower()
                if name.startswith("."):
                    continue
                if os.path.islink(path):
                    try:
                        os.stat(path)
                    except OSError as e:
                        # A dangling link named like an article, or with no suffix (it may have led
                        # to a folder), stands for articles the user expects: say why they are missing.
                        if e.errno in (errno.ELOOP, errno.ENOENT) and (suffix in SUFFIXES or not suffix):
                            problems.append(Problem(relative(path), "symbolic link loop" if e.errno == errno.ELOOP
                                                    else f"broken symbolic link to {os.readlink(path)}"))
                            continue
                if suffix in SUFFIXES:
                    found.append(Path(path))
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def parse_file(file: CorpusFile) -> tuple[list[Article], list[Problem]]:
    """The articles in one file and what was wrong with it."""
    problems: list[Problem] = []
    suffix = file.path.suffix.lower()
    try:
        data = file.read()
    except OSError as e:
        return [], [Problem(file.relative, f"cannot be read ({e.strerror or e})")]
    text, warning = _decode(data, _declared_charset(data) if suffix in (".html", ".htm") else None)
    if text is None:
        return [], [Problem(file.relative, warning or "binary file, not text")]
    if not text.strip():
        return [], [Problem(file.relative, "empty file")]
    share = _garbage_share(text)
    if share > BINARY_SHARE:
        return [], [Problem(file.relative, f"binary file, not text ({share:.0%} control or undecodable characters)")]
    if warning:
        problems.append(Problem(file.relative, warning, skipped=False))
    if _CONTROLS.search(text):   # a stray DOS end-of-file mark or Word line break, never a character of the story
        text = _CONTROLS.sub(" ", text)
    if suffix == ".jsonl":
        articles, line_problems = _parse_jsonl(text, file.relative)
        problems += line_problems
    elif suffix in (".html", ".htm"):
        articles = [_parse_html(text, file.relative, problems)]
    elif suffix in (".md", ".markdown"):
        articles, md_problems = _parse_markdown(text, file.relative)
        problems += md_problems
    else:
        articles = [_parse_text(text, file.relative)]
    kept = []
    for article in articles:
        _check_url(article, problems)
        if article.paragraphs:
            kept.append(article)
        else:
            problems.append(Problem(article.source, "no paragraphs of text"))
    return kept, problems


def parse_bytes(data: bytes, relative: str) -> tuple[list[Article], list[Problem]]:
    """The articles in a file's bytes, read as the corpus would read them (named by relative's suffix)."""
    return parse_file(CorpusFile(Path(relative), relative, hashlib.sha256(data).hexdigest(), len(data), data))


def decode_page(data: bytes, charset: str | None) -> tuple[str | None, str | None]:
    """A fetched page's text: the charset its server declared, else what the page says, else UTF-8 or cp1252."""
    if charset:
        try:
            return data.decode(charset), None
        except (UnicodeDecodeError, LookupError):
            pass
    return _decode(data, _declared_charset(data))


def _check_url(article: Article, problems: list[Problem]) -> None:
    """Keep an article's URL only if it is a safe http(s) link: it becomes a link in public answers."""
    if article.url is None:
        return
    url = safe_url(article.url)
    if url is None:
        problems.append(Problem(article.source, f"url {clean(article.url, 60)!r} is not an http(s) link; left out",
                                skipped=False))
    article.url = url


# -- decoding ------------------------------------------------------------------------------------

# UTF-32 LE before UTF-16 LE: its BOM (FF FE 00 00) starts with the UTF-16 one (FF FE).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
         (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"), (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"))
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")   # C0 and C1 controls but tab, newline, CR
_GARBAGE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")    # the same, form feed allowed, and U+FFFD
_NON_ASCII = re.compile("[^\x00-\x7f]")
_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)


def _decode(data: bytes, declared: str | None = None) -> tuple[str | None, str | None]:
    """The text and a warning about how it was read; no text when the bytes are binary.

    declared is the encoding the file itself names (an HTML <meta charset>), tried when UTF-8 fails.
    """
    for bom, encoding, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding), None
            except UnicodeDecodeError as e:
                return (data[len(bom):].decode(encoding, errors="replace"),
                        f"not valid {name} (byte {e.start + len(bom)}); undecodable bytes replaced")
    if b"\x00" in data[:8192]:
        return None, "binary file, not text (it has NUL bytes)"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        # UTF-8 first even when the page says otherwise: scrapers re-encode pages and keep the old
        # <meta>, while text in another encoding is almost never valid UTF-8 by chance.
        if declared:
            try:
                return data.decode(declared), None
            except (UnicodeDecodeError, LookupError):     # LookupError: "base64" and such are no text encodings
                pass    # the declaration is wrong too: guess as for any other file, and say so
        # Older scrapes are often Windows-1252. Its five unassigned bytes become U+FFFD: the latin-1
        # fallback this replaced made every curly quote of such a file a C1 control character.
        return data.decode("cp1252", errors="replace"), f"not UTF-8 (byte {e.start}); read as cp1252"


def _declared_charset(data: bytes) -> str | None:
    """The encoding an HTML file names in its first 2 KiB, as Python calls it; None for UTF-8 or unknown."""
    m = _CHARSET.search(data[:2048])
    if not m:
        return None
    try:
        name = codecs.lookup(m.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    if name in ("latin-1", "iso8859-1", "ascii"):
        return "cp1252"     # as browsers do: pages labelled latin-1 are written in Windows-1252
    return None if name.startswith("utf-") else name


def _garbage_share(text: str) -> float:
    """The share of the first 64 Ki characters that no text has: controls, unassigned, private, U+FFFD."""
    sample = text[:_SAMPLE_CHARS]
    if not sample:
        return 0.0
    bad = len(_GARBAGE.findall(sample))
    if not sample.isascii():    # unassigned and private-use characters: looked up once per distinct one
        bad += sum(sample.count(c) for c in set(_NON_ASCII.findall(sample)) if unicodedata.category(c) in ("Cn", "Co"))
    return bad / len(sample)


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
        name, day_text, year = (g["month3"], g["d3"], g["y3"]) if g["y3"] else (g["month4"], g["d4"], g["y4"])
        named = _MONTHS.get(name.lower()) or next(
            (n for full, n in _MONTHS.items() if full.startswith(name.lower()) and len(name) >= 3), None)
        return date(int(year), named, int(day_text)).isoformat() if named else None
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


_PLACE_LINE = re.compile(r"[^.!?]{0,80}\s[—–-]")     # "New York CNN Business —": the place, before the story


def _add_body(article: Article, blocks: list[str], headings: set[int] | frozenset[int] = frozenset(), guess: bool = True) -> None:
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
        if i == 0 and _PLACE_LINE.fullmatch(block):    # "London CNN —" alone: a place, not a paragraph to find
            continue
        if i in headings or (guess and not is_last and _looks_like_heading(block)):
            section = block.lstrip("#").strip()
            continue
        if block in seen:      # a photo caption printed twice, a pasted paragraph: index it once
            continue
        if not any(c.isalnum() for c in block):    # "* * *", "---": a break between parts, no words to find
            continue
        seen.add(block)
        article.paragraphs.append(Paragraph(block, section))


def _derived_title(article: Article, relative: str) -> str:
    if not article.paragraphs:
        return Path(relative).stem
    first = article.paragraphs[0].text      # a leading "London CNN —" is not a paragraph (_add_body)
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    if len(sentence) <= 90:
        return sentence.rstrip(" .")
    return sentence[:90].rsplit(" ", 1)[0] + "…"


# -- markdown ------------------------------------------------------------------------------------

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_MD_HEADING = re.compile(r"#{1,6}(?:\s|$)")             # "#MeToo trends" is a hashtag, not a heading
_MD_UNDERLINE = re.compile(r"(=+|-+)\s*$")              # a setext heading's underline
_MD_LINE_MARK = re.compile(r"(?:>\s?)*(?:[-*+](?:\s+|$))?")  # quote and bullet marks; "**bold**" keeps its stars
_MD_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)      # "<!-- more -->" and other notes to the site, not text
# A backslash before a mark makes it a plain character (CommonMark's rule): held as a private-use
# character while the marks are read, restored after. Files Newsdesk writes rely on it to stay verbatim.
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_MD_RESTORE = {0xE000 + i: chr(i) for i in range(128)}
_META_KEYS = {"title", "url", "outlet", "published", "author", "date", "source", "link", "fetched_at"}


def _parse_markdown(text: str, relative: str) -> tuple[list[Article], list[Problem]]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    meta, body_start, problems = _front_matter(lines, relative)
    if body_start is None:
        return [], problems
    body = "\n".join(lines[body_start:])
    if "\\" in body:
        body = _MD_ESCAPE.sub(lambda m: chr(0xE000 + ord(m.group(1))), body)
    body = _MD_COMMENT.sub("", body)
    blocks: list[str] = []
    headings: set[int] = set()
    title = meta.get("title")
    for block in re.split(r"\n\s*\n", body):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        under = next((i for i in range(1, len(lines)) if _MD_UNDERLINE.fullmatch(lines[i])), None)
        if under is not None:   # "Title" over "=====": the lines above the underline are the heading
            lines = [("# " if lines[under][0] == "=" else "## ") + " ".join(lines[:under])] + lines[under + 1:]
        if _MD_HEADING.match(lines[0]):
            heading = lines[0].lstrip("#").strip()
            if title is None and lines[0].startswith("# "):
                title = heading
            else:
                headings.add(len(blocks))
                blocks.append(heading)
            lines = lines[1:]
            if not lines:
                continue
        joined = " ".join(_MD_LINE_MARK.sub("", line, count=1).strip() for line in lines)
        blocks.append(_MD_EMPHASIS.sub(r"\2", _MD_LINK.sub(r"\1", joined)))
    blocks = [block.translate(_MD_RESTORE) for block in blocks]
    title = title.translate(_MD_RESTORE) if title else title
    article = Article(relative, relative, title or "", [], url=meta.get("url") or meta.get("link"),
                      outlet=meta.get("outlet") or meta.get("source"), author=meta.get("author"),
                      published=_iso(meta.get("published") or meta.get("date")))
    # A file Newsdesk wrote (it has fetched_at) marks its headings itself: no short line becomes a heading,
    # no line a date, so every paragraph fetched is a paragraph read back, word for word.
    _add_body(article, blocks, headings, guess="fetched_at" not in meta)
    article.title = article.title or _derived_title(article, relative)
    return [article], problems


def _front_matter(lines: list[str], relative: str) -> tuple[dict[str, str], int | None, list[Problem]]:
    """The known keys of a leading "---" YAML block, the line the body starts at, and what was wrong.

    Read with a real YAML parser (keys in any case; lists joined with ", "; dates as ISO). When the block
    is not valid YAML, each top-level entry is read on its own so one broken line costs only itself,
    and the warning names the line. A block never closed skips the file (body start None), since there
    is no telling where the metadata ends and the story starts. Either way the front matter is never
    read as paragraphs.
    """
    if not lines or lines[0].rstrip() != "---":
        return {}, 0, []
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        return {}, None, [Problem(relative, 'front matter opened on line 1 is never closed (no "---" line after it)')]
    problems: list[Problem] = []
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
        entries = [data] if isinstance(data, dict) else []
        if data is not None and not isinstance(data, dict):
            problems.append(Problem(relative, 'front matter is not "key: value" lines', skipped=False))
    except yaml.YAMLError:
        entries = []
        for start, segment in _entries(lines[1:end], first_line=2):
            try:
                data = yaml.safe_load(segment)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                line = start + (mark.line if mark else 0)
                problems.append(Problem(relative, f"front matter line {line} is not valid YAML "
                                        f"({getattr(e, 'problem', None) or 'unreadable'})", skipped=False))
                continue
            if isinstance(data, dict):
                entries.append(data)
            elif data is not None:
                problems.append(Problem(relative, f'front matter line {start} is not "key: value" '
                                        f"({segment.strip()[:40]!r})", skipped=False))
    meta: dict[str, str] = {}
    for entry in entries:
        for key, value in entry.items():
            key = str(key).strip().lower()
            text = _meta_text(value)
            if key in _META_KEYS and text:     # an empty title must not stop the "# heading" from being the title
                meta[key] = text
    return meta, end + 1, problems


def _entries(lines: list[str], first_line: int) -> list[tuple[int, str]]:
    """Top-level YAML entries: a line at the margin and the indented or "- item" lines under it."""
    entries: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if entries and (line[0].isspace() or line.startswith("- ") or line == "-"):
            entries[-1][1].append(line)
        else:
            entries.append((number, [line]))
    return [(number, "\n".join(block)) for number, block in entries]


def _meta_text(value: object) -> str | None:
    """A YAML value as metadata text: dates in ISO, lists joined with ", ", mappings ignored."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        items = [t for item in value if (t := _meta_text(item))]
        return ", ".join(items) or None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return " ".join(str(value).split()) or None
    return None


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

def _parse_html(text: str, relative: str, problems: list[Problem]) -> Article:
    """The article in a saved web page, extracted as fetched pages are (index/extract.py)."""
    page = extract_html(text)
    article = Article(relative, relative, page.title or "", [], url=page.url, outlet=page.outlet,
                      author=page.author, published=_iso(page.published))
    # The extractor knows headings from paragraphs; nothing is guessed from line length here.
    _add_body(article, page.blocks, page.headings, guess=False)
    article.title = article.title or _derived_title(article, relative)
    return article


# -- jsonl ---------------------------------------------------------------------------------------

def _parse_jsonl(text: str, relative: str) -> tuple[list[Article], list[Problem]]:
    articles, problems = [], []
    seen_ids: set[str] = set()
    # JSON Lines ends records at "\n" only: str.splitlines would also cut at a U+2028 or U+0085
    # inside a JSON string and lose the article as two lines of broken JSON.
    for number, line in enumerate(text.split("\n"), start=1):
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
        article = Article(source, relative, _string(record, "title") or "", [], url=_string(record, "url"),
                          outlet=_string(record, "outlet"), author=_string(record, "author"),
                          published=_iso(_string(record, "published")))
        # A record's blocks are paragraphs, its metadata fields the title and date: on crawled news a short
        # block guessed as a heading is a dateline or byline ("New York CNN Business —", "Associated
        # Press") that would become context for every paragraph after it (README, "Answer quality").
        _add_body(article, [p.strip() for p in paragraphs if p.strip()], guess=False)
        article.title = article.title or _derived_title(article, source)
        articles.append(article)
    return articles, problems


def _string(record: dict, key: str) -> str | None:
    """A metadata field as text: a number is written out; a list or an object is not metadata we know."""
    value = record.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return (value.strip() or None) if isinstance(value, str) else None
