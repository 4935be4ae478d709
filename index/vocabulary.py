"""What the analyzer and the query expander know beyond Snowball: shipped tables and aliases mined from the corpus."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Iterable

from .analysis import Analyzer, SnowballStemmer, load_table, load_word_list
from .bm25 import BM25Params

__all__ = ("Vocabulary", "make_analyzer", "analyzer_fingerprint", "mine_aliases", "alias_counts", "ANALYSIS_REVISION")

_log = logging.getLogger(__name__)

# Bump when analysis.py changes what terms a text yields: stored tokens are then recomputed.
ANALYSIS_REVISION = 2


@dataclass
class Vocabulary:
    places: list[list[str]] = field(default_factory=list)     # equivalent forms: Egypt, Egyptian, Egyptians
    irregular: list[list[str]] = field(default_factory=list)  # inflections Snowball leaves apart: lead, led

    @classmethod
    def load(cls) -> "Vocabulary":
        return cls(places=load_table("places.tsv"), irregular=load_table("irregular.tsv"))

    def term_map(self) -> dict[str, str]:
        """Stem of each irregular form -> stem of its base form."""
        stem = SnowballStemmer("english").stem
        mapping: dict[str, str] = {}
        for base, *forms in self.irregular:
            for form in forms:
                if stem(form.lower()) != stem(base.lower()):
                    mapping.setdefault(stem(form.lower()), stem(base.lower()))
        return mapping

    def fingerprint(self) -> str:
        data = json.dumps([sorted(load_word_list("stopwords.txt")), self.irregular, ANALYSIS_REVISION])
        return hashlib.sha256(data.encode()).hexdigest()[:16]


def make_analyzer(vocabulary: Vocabulary) -> Analyzer:
    return Analyzer(term_map=vocabulary.term_map())


def analyzer_fingerprint(vocabulary: Vocabulary, params: BM25Params) -> str:
    """Changes whenever stored tokens or the compiled index would come out differently."""
    return f"{vocabulary.fingerprint()}:{params.method}:{params.k1}:{params.b}:{params.delta}:{params.epsilon}"


_PARENTHESISED = re.compile(r"\(\s*([A-Z][A-Z&]{1,7})\s*\)|\b([A-Z][A-Z&]{1,7})\s*\(\s*([A-Z][^()]{3,80}?)\s*\)")
_SMALL = {"of", "the", "and", "for", "de", "al", "&"}


def mine_aliases(texts: Iterable[str]) -> list[list[str]]:
    """Pairs [ACRONYM, Long Form] written as "Long Form (ACR)" or "ACR (Long Form)" somewhere in the corpus.

    The long form must spell the acronym with its capitalised words' initials, which keeps out
    "(AFP)" after a caption or "(R)" after a name.
    """
    return sorted(list(pair) for pair in alias_counts(texts))


def alias_counts(texts: Iterable[str]) -> dict[tuple[str, str], int]:
    """mine_aliases' pairs, each with how many of the texts write it: a delta segment (index/segments.py) keeps
    a pair while some live passage writes it."""
    counts: dict[tuple[str, str], int] = {}
    for text in texts:
        if "(" not in text:
            continue
        found: set[tuple[str, str]] = set()
        for m in _PARENTHESISED.finditer(text):
            if m.group(1):      # Long Form (ACR): look back over the words before the parenthesis
                acronym = m.group(1)
                before = re.findall(r"[\w'’.&-]+", text[max(0, m.start() - 120):m.start()])
                long_form = _matching_tail(before[-10:], acronym)
            else:               # ACR (Long Form)
                acronym, words = m.group(2), m.group(3).split()
                long_form = " ".join(words) if _initials(words) == acronym.replace("&", "") else None
            if long_form:
                found.add((acronym, long_form))
        for pair in found:
            counts[pair] = counts.get(pair, 0) + 1
    # Every spelling is kept ("Guard" and "Guards"): each is what some article wrote.
    return counts


def _matching_tail(words: list[str], acronym: str) -> str | None:
    """The shortest run of words ending the list whose initials spell the acronym."""
    letters = acronym.replace("&", "")
    for start in range(len(words) - 1, -1, -1):
        tail = words[start:]
        if tail[0].lower() in _SMALL:
            continue
        initials = _initials(tail)
        if initials == letters:
            return " ".join(tail)
        if len(initials) > len(letters):
            return None
    return None


def _initials(words: list[str]) -> str:
    return "".join(w[0].upper() for w in words if w.lower() not in _SMALL and w[0].isalpha())
