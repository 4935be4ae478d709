"""New articles into the corpus: a fetched page or a given file becomes a corpus file, never twice.

The corpus files stay the source of truth: a fetched article is written as a .md file with YAML front
matter (title, url, outlet, published, author, fetched_at) under corpus/<outlet-or-host>/, read back
with the corpus reader before it is kept, and the incremental rebuild indexes it like any other file.
What has been added (canonical URLs, text hashes) is remembered in the ledger (index/feeds.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .corpus import MAX_FILE_BYTES, SUFFIXES, Article, decode_page, parse_bytes
from .errors import CorpusError
from .extract import extract_html
from .fetch import Fetched, FetchError
from .inert import clean
from .links import canonical_url, safe_url

__all__ = ("Added", "ArticleSkipped", "page_to_markdown", "write_new", "file_article", "text_key", "url_keys",
           "writable_corpus")

_log = logging.getLogger(__name__)


class ArticleSkipped(FetchError):
    """The page or file is fine to fetch but is no article to add (no text, or one we have)."""


@dataclass
class Added:
    """One article written into the corpus: where, what it says, and where it came from."""

    path: str                    # corpus-relative
    article: Article
    url: str | None

    def preview(self) -> str:
        a = self.article
        facts = [a.outlet or "", a.published or "no date", f"{len(a.paragraphs)} paragraphs"]
        lines = [f"Added: {clean(a.title, 200)}", " · ".join(f for f in facts if f)]
        if self.url:
            lines.append(self.url)
        if a.paragraphs:
            lines.append("> " + clean(a.paragraphs[0].text, 600))
        lines.append(f"Saved as {self.path}")
        return "\n".join(lines)


def writable_corpus(corpus: Path) -> Path:
    """The corpus folder new articles go into; the shipped articles and a single file are not one."""
    from .config import default_corpus

    if corpus.is_file():
        raise CorpusError(f"The corpus {corpus} is one file; articles can only be added to a folder.",
                          "Give --corpus FOLDER (or set NEWSDESK_CORPUS).")
    if corpus.resolve() == default_corpus().resolve():
        raise CorpusError("The shipped articles are not a place to add to.",
                          "Give --corpus FOLDER (or set NEWSDESK_CORPUS) for the articles you fetch and add.")
    corpus.mkdir(parents=True, exist_ok=True)
    return corpus


def text_key(article: Article) -> str:
    """The same story's text gives the same key, whatever its URL, markup or spacing."""
    words = " ".join(p.text for p in article.paragraphs).casefold().split()
    return "text:" + hashlib.sha256(" ".join(words).encode()).hexdigest()[:32]


def url_keys(*urls: str | None) -> list[str]:
    return list(dict.fromkeys("url:" + canonical_url(u) for u in urls if u and safe_url(u)))


def page_to_markdown(fetched: Fetched, fetched_at: str, outlet_hint: str | None = None) -> tuple[str, str, str | None]:
    """A fetched page as a corpus .md file: (text, folder name, the page's own canonical URL).

    Blocking (the extractor parses the whole page): run it in a worker thread. Raises ArticleSkipped
    when the page holds no article text.
    """
    text, _ = decode_page(fetched.body, fetched.charset)
    if text is None:
        raise ArticleSkipped("not text (binary content)")
    page = extract_html(text, url=fetched.url)
    paragraphs = [b for i, b in enumerate(page.blocks) if i not in page.headings]
    if not paragraphs:
        raise ArticleSkipped("no article text found on the page")
    host = urlsplit(fetched.url).hostname or "web"
    outlet = page.outlet or outlet_hint or host
    meta = {"title": page.title, "url": safe_url(fetched.url), "outlet": outlet,
            "published": page.published, "author": page.author, "fetched_at": fetched_at}
    body = []
    for i, block in enumerate(page.blocks):
        body.append(f"## {_escape(block)}" if i in page.headings else _escape(block))
    front = yaml.safe_dump({k: v for k, v in meta.items() if v}, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{front}---\n\n" + "\n\n".join(body) + "\n", _slug(outlet), safe_url(page.url)


def write_new(corpus: Path, folder: str, markdown: str, expected: list[str] | None = None) -> Added:
    """Write a new .md article under corpus/folder, named by date and title, after reading it back.

    Reading it back with the corpus reader proves the file says what was fetched, word for word; a
    file that would not is refused rather than indexed altered.
    """
    probe = f"{folder}/new.md"
    articles, problems = parse_bytes(markdown.encode("utf-8"), probe)
    if len(articles) != 1:
        raise ArticleSkipped("; ".join(p.reason for p in problems) or "no article text")
    article = articles[0]
    if expected is not None and [p.text for p in article.paragraphs] != expected:
        raise ArticleSkipped("cannot be stored word for word as markdown")
    stem = f"{article.published or time.strftime('%Y-%m-%d', time.gmtime())}-{_slug(article.title)[:60].strip('-')}"
    target_dir = corpus / folder
    target_dir.mkdir(parents=True, exist_ok=True)
    relative = _create(target_dir, stem, ".md", markdown.encode("utf-8")).relative_to(corpus).as_posix()
    article.source = article.file = relative
    return Added(relative, article, article.url)


def file_article(name: str, data: bytes) -> list[Article]:
    """The articles in a file someone gives (a path or a Discord attachment), if the corpus reader accepts it."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise CorpusError(f"{clean(name, 80)} is not an article file.", f"Give one of: {', '.join(SUFFIXES)}.")
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(f"{clean(name, 80)} is too large ({len(data) / 2**20:.0f} MiB; the limit is "
                          f"{MAX_FILE_BYTES // 2**20} MiB).")
    articles, problems = parse_bytes(data, Path(name).name)
    if not articles:
        raise CorpusError(f"{clean(name, 80)} holds no article: " + ("; ".join(p.reason for p in problems) or "no text"))
    return articles


def copy_in(corpus: Path, name: str, data: bytes) -> str:
    """Copy a file someone gave into corpus/added/, under a name no other file has; its relative path."""
    path = Path(name)
    stem = _slug(path.stem)[:60].strip("-") or "article"
    return _create(corpus / "added", stem, path.suffix.lower(), data).relative_to(corpus).as_posix()


def _create(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """A new file, never over an existing one (O_EXCL), written whole before it gets its name."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        try:
            os.write(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        return path
    raise CorpusError(f"Too many files named {stem} in {folder}.")


def _slug(text: str | None) -> str:
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "article"


# Characters the markdown reader gives a meaning to, escaped so the paragraph reads back as written.
_INLINE = re.compile(r"([\\`*_\[\]<])")


def _escape(text: str) -> str:
    text = _INLINE.sub(r"\\\1", text)
    return "\\" + text if text[:1] in "#>-+=" else text
