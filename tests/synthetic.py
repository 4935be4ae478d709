"""Generated corpora for tests and benchmarks that need many passages: made up words, real files."""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ("write_articles",)

_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "vo", "ze", "bar", "den", "fol", "gun", "hal", "jim")


def write_articles(folder: Path, passages: int, per_article: int = 20, seed: int = 7, words: int = 40) -> Path:
    """`passages` distinct paragraphs in articles of `per_article` paragraphs, as .txt files under folder."""
    rng = random.Random(seed)
    vocabulary = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(6000)})
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(0, passages, per_article):
        count = min(per_article, passages - number)
        paragraphs = [" ".join(rng.choices(vocabulary, k=words)).capitalize() + f" (item {number + i})."
                      for i in range(count)]
        text = f"Generated dispatch {number // per_article}\n\n" + "\n\n".join(paragraphs) + "\n"
        (folder / f"gen_{number // per_article:06d}.txt").write_text(text, encoding="utf-8")
    return folder
