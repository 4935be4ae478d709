"""List questions ("which countries bombed the PFG?"): the names the quotes give, each with its passages.

Only words that literally stand in a quoted piece are listed, so the summary can never say more than the
quotes under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

__all__ = ("Named", "focus_of", "names_in_quotes")

_FOCUS = [
    ("countries", re.compile(r"\b(?:which|what)\s+(?:\w+\s+)?(?:countries|country|nations?|states?|governments?)\b", re.I)),
    ("organisations", re.compile(
        r"\b(?:which|what)\s+(?:\w+\s+)?(?:groups?|organi[sz]ations?|militias?|forces?|brigades?|factions?|"
        r"parties|party|agencies|agency|outlets?|newspapers?|media|armies|army)\b", re.I)),
    ("people", re.compile(
        r"\b(?:who|whom|which\s+(?:\w+\s+)?(?:people|persons?|officials?|leaders?|ministers?|generals?|"
        r"commanders?|spokes(?:man|men|person|people)|presidents?))\b", re.I)),
]

_ACRONYM = re.compile(r"\b[A-Z][A-Z&]{1,6}\b")
_ORG_WORDS = ("Army", "Brigade", "Brigades", "Guard", "Guards", "Council", "Ministry", "Forces", "Agency", "Command",
              "Government", "Accord", "League", "State", "Operation", "Directorate", "Observer", "Net", "Politico")
_CAPITALISED_RUN = re.compile(r"(?:(?:[A-Z][\w'’]*|al|of|the|and)[\s-]+)*[A-Z][\w'’]*")
_NAME = r"(?:(?:al|Al|el|El|Abdel|Abdul|Abu|bin|ibn)[-\s])?[A-Z][a-z]+(?:[’'][a-z]+)?"
_FULL_NAME = rf"{_NAME}(?:\s+{_NAME}){{1,3}}"
# Without a named-entity tagger, a person is a capitalised name next to what news writes about people:
# a title or role before it ("Defense Minister Sergei Shoigu", "led by Ibrahim Jadhran"), a speech verb
# after it ("Mismari said"), or an apposition ("Ahmad al-Mismari, the spokesperson").
_ROLE = (r"(?:President|Minister|General|Colonel|Field-Marshal|Brigadier-General|Marshal|Secretary|Director|"
         r"Chief|spokes(?:man|woman|person)|strongman|commander|researcher|activist|officer|leader|"
         r"designate|official|led by|met with|headed by)")
_TITLE_WORDS = {"Defense", "Defence", "Foreign", "Interior", "Prime", "Minister", "President", "General", "Colonel",
                "Field-Marshal", "Brigadier-General", "Secretary", "Director", "Chief", "Commander", "Spokesman",
                "Russian", "Egyptian", "Libyan", "American", "Vice", "Deputy", "Mr", "Mrs", "Ms", "Dr"}
_TIME_WORDS = {"Last", "Next", "This", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
               "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December"}
_PERSON = re.compile(
    rf"(?:\b{_ROLE}\s+(?P<after_role>{_FULL_NAME}))"
    rf"|(?:(?P<before_verb>{_FULL_NAME})(?=\s+(?:said|says|told|added|claimed|warned|stated)\b|,\s+(?:the|a|an)\s))")

@dataclass(frozen=True)
class Named:
    name: str                      # as written in the quote
    passage_ids: tuple[str, ...]


def focus_of(question: str) -> str | None:
    """"countries", "organisations" or "people" when the question asks for a list of them."""
    for focus, pattern in _FOCUS:
        if pattern.search(question):
            return focus
    return None


def names_in_quotes(focus: str, quotes: Iterable[tuple[str, Sequence[str]]],
                    places: Sequence[Sequence[str]] = ()) -> list[Named]:
    """Names of the focus kind in (passage id, quoted pieces) pairs, in order of first appearance."""
    found: dict[str, list[str]] = {}          # key -> passage ids, in order of first appearance
    shown: dict[str, tuple[int, str]] = {}    # key -> (rank, spelling): a country's name beats its demonym
    for passage_id, pieces in quotes:
        for piece in pieces:
            for name, key, rank in _names(focus, piece, places):
                if key not in shown or rank < shown[key][0]:
                    shown[key] = (rank, name)
                ids = found.setdefault(key, [])
                if passage_id not in ids:
                    ids.append(passage_id)
    # A name in far fewer quotes than the most quoted one is scenery ("east Libya"), not an answer.
    most = max((len(ids) for ids in found.values()), default=0)
    return [Named(shown[key][1], tuple(ids)) for key, ids in found.items() if 2 * len(ids) >= most]


def _names(focus: str, text: str, places: Sequence[Sequence[str]]) -> Iterable[tuple[str, str, int]]:
    """(name as written, key that groups spellings of the same thing, preference: lower is better)."""
    if focus == "countries":
        yield from _countries(text, places)
        return
    country_forms = {form for row in places for form in row}
    if focus == "organisations":
        for m in _CAPITALISED_RUN.finditer(text):
            run = re.sub(r"^(?:(?:the|of|and|al)\s+)+", "", m.group().strip())
            words = run.replace("-", " ").split()
            if any(w in _ORG_WORDS for w in words[1:] + words[-1:]) and len(words) > 1:
                yield run, run.lower(), 0
        for m in _ACRONYM.finditer(text):
            if m.group() not in country_forms and m.group() not in ("UN", "US", "UK", "AFP", "IS"):
                yield m.group(), m.group(), 0
        return
    for m in _PERSON.finditer(text):
        words = (m.group("after_role") or m.group("before_verb")).split()
        while len(words) > 2 and words[0] in _TITLE_WORDS:
            words = words[1:]
        if not any(w in country_forms or w in _ORG_WORDS or w in _TITLE_WORDS or w in _TIME_WORDS for w in words):
            yield " ".join(words), words[-1].lower().removeprefix("al-"), -len(words)


def _countries(text: str, places: Sequence[Sequence[str]]) -> Iterable[tuple[str, str, int]]:
    pattern, where = _place_pattern(tuple(tuple(row) for row in places))
    for m in pattern.finditer(text):
        country, rank = where[m.group(1)]
        yield m.group(1), country, rank


@lru_cache(maxsize=4)
def _place_pattern(places: tuple[tuple[str, ...], ...]) -> tuple[re.Pattern, dict[str, tuple[str, int]]]:
    """One regex for every form of every country, longest first ("United Arab Emirates" before "Arab"),
    and where each form comes from: (country, rank in its row; a country's name ranks before its demonym).

    "Libya Observer" is an outlet, not Libya: a form followed by a capitalised word is skipped.
    """
    where: dict[str, tuple[str, int]] = {}
    for row in places:
        for rank, form in enumerate(row):
            where.setdefault(form, (row[0], rank))
    forms = sorted(where, key=len, reverse=True)
    alternation = "|".join(re.escape(form) for form in forms) or "(?!)"
    return re.compile(rf"(?<![\w-])({alternation})(?![\w-])(?!\s+[A-Z])"), where
