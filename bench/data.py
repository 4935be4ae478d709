"""Loaders for the benchmark data in ../shared/data (never copied into the repo).

Every loader returns a list of ``(id, title, text)`` paragraphs.  Paragraph counts the
data README gives: SQuAD dev 2,067, BBC 10,547, Reuters 105,614 (118,228 in all).
"""

from __future__ import annotations

import html
import json
import os
import random
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()

Paragraph = tuple[str, str, str]  # (id, title, text)


def data_root(path: str | os.PathLike | None = None) -> Path:
    root = Path(path).resolve() if path else DEFAULT_DATA
    if not (root / "squad_v1.1_dev" / "corpus.jsonl").is_file():
        raise SystemExit(
            f"Benchmark data not found under {root}. "
            "Pass --data PATH pointing at the shared data folder (it holds squad_v1.1_dev/, "
            "bbc_news/ and reuters21578/)."
        )
    return root


# --------------------------------------------------------------------------- SQuAD
def load_squad(root: Path) -> list[Paragraph]:
    out: list[Paragraph] = []
    with open(root / "squad_v1.1_dev" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            art = json.loads(line)
            for i, p in enumerate(art["paragraphs"]):
                if p.strip():
                    out.append((f"squad/{art['id']}/{i}", art["title"], p))
    return out


def load_questions(root: Path) -> list[dict]:
    """SQuAD questions: {"q", "any": [80-char prefix of gold paragraph], "id"}."""
    with open(root / "squad_v1.1_dev" / "questions.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sample_questions(questions: list[dict], n: int, seed: int = 0) -> list[dict]:
    if n >= len(questions):
        return list(questions)
    return random.Random(seed).sample(questions, n)


# --------------------------------------------------------------------------- BBC
_BLANK = re.compile(r"\n\s*\n")


def load_bbc(root: Path) -> list[Paragraph]:
    base = root / "bbc_news" / "bbc"
    out: list[Paragraph] = []
    for cat in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(cat.glob("*.txt")):
            raw = f.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
            head, _, body = raw.partition("\n")
            title = head.strip()
            k = 0
            for para in _BLANK.split(body):
                para = para.strip()
                if para:
                    out.append((f"bbc/{cat.name}/{f.stem}/{k}", title, para))
                    k += 1
    return out


# --------------------------------------------------------------------------- Reuters
_REUTERS = re.compile(r"<REUTERS\b([^>]*)>(.*?)</REUTERS>", re.S)
_NEWID = re.compile(r'NEWID="(\d+)"')
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
_TRAILER = re.compile(r"\s*Reuter\s*&#3;\s*$")
# "a newline followed by indentation": two or more whitespace characters after the newline.
# This reproduces the data README's 105,614 paragraphs exactly.
_INDENT_SPLIT = re.compile(r"\n(?=\s{2,})")


def load_reuters(root: Path) -> list[Paragraph]:
    base = root / "reuters21578"
    out: list[Paragraph] = []
    for f in sorted(base.glob("reut2-*.sgm")):
        s = f.read_bytes().decode("latin-1")
        for m in _REUTERS.finditer(s):
            attrs, doc = m.group(1), m.group(2)
            bm = _BODY.search(doc)
            if not bm:
                continue
            nid = _NEWID.search(attrs)
            newid = nid.group(1) if nid else f"{f.stem}-{m.start()}"
            tm = _TITLE.search(doc)
            title = html.unescape(tm.group(1)).strip() if tm else ""
            body = html.unescape(_TRAILER.sub("", bm.group(1)))
            k = 0
            for para in _INDENT_SPLIT.split(body):
                para = " ".join(para.replace("\x03", " ").split())
                if para:
                    out.append((f"reuters/{newid}/{k}", title, para))
                    k += 1
    return out


def load_all(root: Path) -> dict[str, list[Paragraph]]:
    return {"squad": load_squad(root), "bbc": load_bbc(root), "reuters": load_reuters(root)}


def repeat_to(paras: list[Paragraph], n: int, distinct_text: bool = False) -> list[Paragraph]:
    """``n`` paragraphs made by repeating real ones under distinct ids (copy r of p gets id p#r).

    With ``distinct_text`` copy r >= 1 also gets " (r<r>)" appended, one extra term, so that a
    store that deduplicates passages by exact text (the product does) still holds ``n`` passages.
    """
    out: list[Paragraph] = []
    base = len(paras)
    for i in range(n):
        pid, title, text = paras[i % base]
        r = i // base
        if r == 0:
            out.append((pid, title, text))
        else:
            out.append((f"{pid}#r{r}", title, f"{text} (r{r})" if distinct_text else text))
    return out


def write_jsonl_corpus(paras: list[Paragraph], folder: Path, max_bytes: int = 24 << 20) -> tuple[int, int]:
    """Write paragraphs as {"id","title","paragraphs":[...]} articles, one per line, into ``folder``.

    Consecutive paragraphs sharing an article id (everything before the last '/', plus the repeat
    suffix) form one article.  Files are cut at ``max_bytes`` (the product refuses files over
    50 MiB) and named corpus-000.jsonl, corpus-001.jsonl, ...  Returns (articles, files).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_articles, n_files, size = 0, 0, 0
    fh = None

    def emit(aid: str, title: str, paragraphs: list[str]) -> None:
        nonlocal fh, n_articles, n_files, size
        line = (json.dumps({"id": aid, "title": title, "paragraphs": paragraphs}) + "\n").encode()
        if fh is None or size + len(line) > max_bytes:
            if fh is not None:
                fh.close()
            fh = open(folder / f"corpus-{n_files:03d}.jsonl", "wb")
            n_files += 1
            size = 0
        fh.write(line)
        size += len(line)
        n_articles += 1

    cur_id, cur_title, cur = None, "", []
    for pid, title, text in paras:
        base, _, rest = pid.rpartition("/")
        rep = rest.partition("#")[2]
        aid = f"{base}#{rep}" if rep else base
        if aid != cur_id:
            if cur:
                emit(cur_id, cur_title, cur)
            cur_id, cur_title, cur = aid, title, []
        cur.append(text)
    if cur:
        emit(cur_id, cur_title, cur)
    if fh is not None:
        fh.close()
    return n_articles, n_files


if __name__ == "__main__":  # quick count check
    import sys

    r = data_root(sys.argv[1] if len(sys.argv) > 1 else None)
    tot = 0
    for name, ps in load_all(r).items():
        print(f"{name:8s} {len(ps):8,d}")
        tot += len(ps)
    print(f"{'total':8s} {tot:8,d}")
