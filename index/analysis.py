"""Text analysis: words to index terms, and text to sentences. Pure functions of text, no I/O but the data files."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import types
import unicodedata
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

def _nltk_parts() -> tuple[type, ...]:
    """SnowballStemmer and the Punkt classes: the only parts of NLTK the analysis uses (they need no data).

    nltk's package __init__ imports most of NLTK (corpus readers, chunkers, translation metrics, and
    scipy.stats when scipy is installed): 0.3 s or more of every process start (the CLI, the bot, each build
    worker) for two modules. When nltk is not loaded yet, its package and the subpackages on the way are
    stood in for by empty modules with nltk's own paths while the two modules load, so only their own
    imports run; the stand-ins are then dropped, and a later `import nltk` loads the real package. If that
    fails for any reason, NLTK is loaded whole, with scipy hidden (the Fisher test takes its fallback).
    """
    if "nltk" not in sys.modules:
        try:
            return _nltk_parts_alone()
        except Exception:
            for name in [m for m in sys.modules if m == "nltk" or m.startswith("nltk.")]:
                del sys.modules[name]
            _log.debug("Loading NLTK's stemmer and Punkt alone failed; loading NLTK whole", exc_info=True)
    hide_scipy = "scipy" not in sys.modules
    if hide_scipy:
        sys.modules["scipy"] = None  # type: ignore[assignment]
    try:
        from nltk.stem.snowball import SnowballStemmer
        from nltk.tokenize.punkt import PunktLanguageVars, PunktParameters, PunktSentenceTokenizer, PunktTrainer
    finally:
        if hide_scipy:
            del sys.modules["scipy"]
    return SnowballStemmer, PunktLanguageVars, PunktParameters, PunktSentenceTokenizer, PunktTrainer


_STAND_INS = {"nltk": {}, "nltk.stem": {}, "nltk.tokenize": {}, "nltk.corpus": {"stopwords": None}}


def _nltk_parts_alone() -> tuple[type, ...]:
    spec = importlib.util.find_spec("nltk")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nltk is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    for name, attributes in _STAND_INS.items():
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        package.__dict__.update(attributes)
        sys.modules[name] = package
    try:
        from nltk.stem.snowball import SnowballStemmer
        from nltk.tokenize.punkt import PunktLanguageVars, PunktParameters, PunktSentenceTokenizer, PunktTrainer
    finally:
        for name in _STAND_INS:
            sys.modules.pop(name, None)
    return SnowballStemmer, PunktLanguageVars, PunktParameters, PunktSentenceTokenizer, PunktTrainer


__all__ = (
    "Analyzer",
    "SentenceSplitter",
    "fold_text",
    "load_word_list",
    "load_table",
)

_log = logging.getLogger(__name__)
if TYPE_CHECKING:
    from nltk.stem.snowball import SnowballStemmer
    from nltk.tokenize.punkt import PunktLanguageVars, PunktParameters, PunktSentenceTokenizer, PunktTrainer
else:
    SnowballStemmer, PunktLanguageVars, PunktParameters, PunktSentenceTokenizer, PunktTrainer = _nltk_parts()

# One character in, one character out: offsets found in folded text are offsets in the original,
# which is what lets a quote be cut from the verbatim paragraph.
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u02bc": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\u200a": " ", "\u3000": " ",
    "\u200b": " ", "\ufeff": " ",
})

_WORD = r"[^\W_]+(?:'[^\W_]+)*"
_TOKEN = re.compile(
    r"(?:[^\W\d_]\.){2,}"                 # dotted abbreviations: U.N., U.S.A.
    r"|\d+(?:[.,]\d+)+[^\W_]*"            # numbers with separators: 1,800  3.36bn
    rf"|{_WORD}(?:-{_WORD})*"             # words, possessives, hyphenated names
)
_ARABIC_ARTICLES = frozenset({"al", "el"})


def fold_text(text: str) -> str:
    """Straighten quotes, dashes and odd spaces without changing the text's length."""
    return text.translate(_FOLD)


def load_word_list(name: str) -> frozenset[str]:
    """A shipped one-word-per-line list from index/data, comments (#) skipped."""
    return frozenset(_data_lines(name))


def load_table(name: str) -> list[list[str]]:
    """A shipped tab-separated table from index/data: one row of equivalent forms a line."""
    return [[field.strip() for field in line.split("\t") if field.strip()] for line in _data_lines(name)]


def _data_lines(name: str) -> list[str]:
    text = resources.files("index").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return [line.rstrip("\n") for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return load_word_list("stopwords.txt")


class Analyzer:
    """Turns text into index terms: folded, case-folded, stopped and Snowball-stemmed.

    The same analyzer must read the documents and the questions, so it carries no state but caches:
    a chunk of text always becomes the same terms, which is why the caches (chunk -> terms, word ->
    stem) are safe, and they are what makes indexing fast: stemming is the hot spot.
    """

    def __init__(self, term_map: dict[str, str] | None = None) -> None:
        self._stem = SnowballStemmer("english").stem
        self._stems: dict[str, str] = {}
        self._stopwords = _stopwords()
        # term_map folds stems that Snowball leaves apart ("led" -> "lead"); it is part of the analysis.
        self.term_map = dict(term_map or {})
        self._terms: dict[str, str] = {}     # chunk of text -> its terms, joined by spaces

    def tokenize(self, text: str) -> list[str]:
        """The analysed terms of a text, in order, repeats kept.

        Splitting at whitespace is a fast first cut (str.split runs in C, a regex over the whole text
        does not); each distinct chunk ("Haftar’s,") is then folded and split into words once, cached.
        No word contains whitespace, so the words come out as from the whole text.
        """
        chunks = text.split()
        analysed: list[str | None] = list(map(self._terms.get, chunks))   # a C loop over a plain dict: the hot path
        if None in analysed:
            for i, terms in enumerate(analysed):
                if terms is None:
                    analysed[i] = self._analyse_chunk(chunks[i])
        return " ".join(analysed).split()  # type: ignore[arg-type]  # every None was just filled in

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokenize(text) for text in texts]

    def terms_of_word(self, word: str) -> tuple[str, ...]:
        """The terms one surface word yields: what highlighting compares against."""
        terms = self._terms.get(word)
        return tuple((self._analyse_chunk(word) if terms is None else terms).split())

    def word_spans(self, text: str) -> list[tuple[int, int, tuple[str, ...]]]:
        """(start, end, terms) for every word of the original text, offsets into that text."""
        folded = fold_text(text)
        return [(m.start(), m.end(), self.terms_of_word(m.group())) for m in _TOKEN.finditer(folded)]

    def _analyse_chunk(self, chunk: str) -> str:
        terms = " ".join(term for word in _TOKEN.findall(_normalize(chunk)) for term in self._analyse_word(word))
        self._terms[chunk] = terms
        return terms

    def _analyse_word(self, word: str) -> tuple[str, ...]:
        if word[-1] == "." and "." in word[:-1]:       # U.N. -> un, never a stopword
            return (word.replace(".", "").lower(),)
        if word[0].isdigit():
            return (word.replace(",", "").lower(),)
        parts = word.split("-")
        terms = []
        for position, part in enumerate(parts):
            lower = part.lower()
            if lower.endswith("'s"):
                lower = lower[:-2]
            # An all-capitals word is an acronym (US, WHO, IT), not the stopword it spells.
            if not (part.isupper() and len(part) > 1) and lower in self._stopwords:
                continue
            if lower in _ARABIC_ARTICLES and position < len(parts) - 1:
                continue
            lower = _strip_accents(lower.replace("'", ""))
            if not lower:
                continue
            stem = self._stems.get(lower)
            if stem is None:
                stem = self._stems[lower] = self._stem(lower)
            terms.append(self.term_map.get(stem, stem))
        return tuple(terms)


def _normalize(text: str) -> str:
    text = text.translate(_FOLD)
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _strip_accents(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class SentenceSplitter:
    """Punkt sentence boundaries, trained on the corpus itself (no nltk.download).

    Works on folded text so that curly quotes close sentences like straight ones; since folding keeps
    length, the spans it returns are offsets into the original, verbatim text.
    """

    def __init__(self, params: PunktParameters | None = None) -> None:
        params = params or PunktParameters()
        params.abbrev_types |= load_word_list("abbreviations.txt")
        self.params = params
        self._tokenizer = PunktSentenceTokenizer(params, lang_vars=PunktLanguageVars())

    @classmethod
    def train(cls, texts: Iterable[str], max_chars: int = 300_000) -> "SentenceSplitter":
        """Learn abbreviations and sentence starters from (a sample of) the corpus."""
        trainer = PunktTrainer(lang_vars=PunktLanguageVars())
        sample: list[str] = []
        size = 0
        for text in texts:
            sample.append(fold_text(text))
            size += len(text)
            if size >= max_chars:
                break
        trainer.train("\n\n".join(sample), finalize=True)
        return cls(trainer.get_params())

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each sentence; the text between spans is only whitespace."""
        return list(self._tokenizer.span_tokenize(fold_text(text)))

    def split(self, text: str) -> list[str]:
        return [text[start:end] for start, end in self.spans(text)]

    def to_json(self) -> str:
        p = self.params
        return json.dumps({
            "abbrev_types": sorted(p.abbrev_types),
            "collocations": sorted(list(pair) for pair in p.collocations),
            "sent_starters": sorted(p.sent_starters),
            "ortho_context": dict(p.ortho_context),
        })

    @classmethod
    def from_json(cls, data: str) -> "SentenceSplitter":
        raw = json.loads(data)
        params = PunktParameters()
        params.abbrev_types = set(raw["abbrev_types"])
        params.collocations = {tuple(pair) for pair in raw["collocations"]}
        params.sent_starters = set(raw["sent_starters"])
        for word, flags in raw["ortho_context"].items():
            params.ortho_context[word] = flags
        return cls(params)
