"""List questions ("which countries bombed the PFG?"): the names the quotes give, each with its passages.

Only words that literally stand in a quoted piece are listed, so the summary can never say more than the
quotes under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

__all__ = ("Named", "focus_of", "leader_target", "names_in_quotes")

_FOCUS = [
    ("countries", re.compile(r"\b(?:which|what)\s+(?:\w+\s+)?(?:countries|country|nations?|states?|governments?)\b", re.I)),
    ("organisations", re.compile(
        r"\b(?:which|what)\s+(?:\w+\s+)?(?:groups?|organi[sz]ations?|militias?|forces?|brigades?|factions?|"
        r"parties|party|agencies|agency|outlets?|newspapers?|media|armies|army)\b", re.I)),
    # A bare "who …?" is not a list question: only "which officials …" asks for names of people.
    ("people", re.compile(
        r"\b(?:which|what)\s+(?:\w+\s+)?(?:people|persons?|officials?|leaders?|ministers?|generals?|"
        r"commanders?|spokes(?:man|men|person|people)|presidents?)\b", re.I)),
]
# "who leads the LNA?": the only names that answer it stand in a leadership relation to the LNA in a quote.
_LEADER_QUESTION = re.compile(
    r"\bwho\s+(?:leads|led|heads|headed|commands|commanded|runs|ran|is\s+(?:in\s+charge\s+of|(?:the\s+)?"
    r"(?:leader|head|commander|chief)\s+of))\s+(?:the\s+)?(?P<target>[^?]+?)\s*\??\s*$", re.I)

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
    """"countries", "organisations" or "people" when the question asks for a list of them; "leaders" for
    "who leads/heads/commands/runs X?"."""
    if leader_target(question):
        return "leaders"
    for focus, pattern in _FOCUS:
        if pattern.search(question):
            return focus
    return None


def leader_target(question: str) -> str | None:
    """What a "who leads X?" question asks about ("LNA"), or None for any other question."""
    m = _LEADER_QUESTION.search(question.strip())
    return m.group("target") if m else None


def names_in_quotes(focus: str, quotes: Iterable[tuple[str, Sequence[str]]],
                    places: Sequence[Sequence[str]] = (), question: str = "") -> list[Named]:
    """Names of the focus kind in (passage id, quoted pieces) pairs, in order of first appearance.

    For "leaders", question gives what they lead; without one nothing is listed.
    """
    if focus == "leaders":
        return _leaders_in_quotes(leader_target(question) or "", quotes)
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


# ----------------------------------------------------------------------------------- leaders

_LEADER_TITLES = {"Field-Marshal", "Marshal", "General", "Colonel", "Brigadier-General", "Major", "Commander",
                  "Chief", "President", "Prime", "Minister", "Mr", "Dr", "Sheikh", "Lieutenant", "Lt", "Gen"}
# A name as written: capitalised words (titles stripped afterwards); "’s" and "-" around it are not part of it.
_LEADER_WORD = r"(?:(?:al|el|bin|ibn)-?\s?)?[A-Z]\w*[a-z]\w*(?:-\w+)*"
_LEADER_NAME = rf"(?P<p>{_LEADER_WORD}(?:\s+{_LEADER_WORD}){{0,4}})"
_ROLE_NOUN = r"(?:commander|leader|head|chief|warlord|strongman|founder)"


def _leader_patterns(forms: Sequence[str]) -> list[re.Pattern]:
    x = "(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + r")(?:\s*\([A-Z&]{2,8}\))?"
    return [re.compile(p) for p in (
        rf"\b{x}\s*,?\s*-?\s*(?:led|headed|commanded|run|founded)\s+by\s+{_LEADER_NAME}",    # X led by P
        rf"\b{_LEADER_NAME}[’']s\s+(?:so-called\s+)?{x}",                                    # P's X
        rf"\b{_LEADER_NAME},\s+(?:the\s+)?{_ROLE_NOUN}\s+of\s+(?:the\s+)?(?:so-called\s+)?{x}",  # P, the commander of X
        rf"\b{x}\s+{_ROLE_NOUN}\s+{_LEADER_NAME}",                                           # X commander P
        rf"\b{_ROLE_NOUN}\s+of\s+(?:the\s+)?(?:so-called\s+)?{x}\s*,?\s+{_LEADER_NAME}",     # leader of X, P
    )]


def _target_forms(target: str, texts: Sequence[str]) -> list[str]:
    """The target as asked, and its long form or acronym where a quote spells both ("Libyan National Army (LNA)")."""
    target = re.sub(r"^(?:the|its|their)\s+", "", target.strip(), flags=re.I)
    forms = {target}
    for text in texts:
        for m in re.finditer(r"((?:[A-Z][\w’'-]*\s+){1,6}[A-Z][\w’'-]*)\s*\(([A-Z&]{2,8})\)", text):
            long, acronym = m.group(1).strip(), m.group(2)
            if target.lower() in (long.lower(), acronym.lower()):
                forms |= {long, acronym}
    return [f for f in forms if f]


def _leaders_in_quotes(target: str, quotes: Iterable[tuple[str, Sequence[str]]]) -> list[Named]:
    quotes = [(pid, list(pieces)) for pid, pieces in quotes]
    if not target:
        return []
    patterns = _leader_patterns(_target_forms(target, [p for _, pieces in quotes for p in pieces]))
    found: dict[str, list[str]] = {}
    shown: dict[str, str] = {}
    for passage_id, pieces in quotes:
        for piece in pieces:
            for pattern in patterns:
                for m in pattern.finditer(piece):
                    words = m.group("p").split()
                    while words and words[0] in _LEADER_TITLES:
                        words = words[1:]
                    if not words or any(w in _ORG_WORDS or w in _TIME_WORDS for w in words):
                        continue
                    key = words[-1].lower().removeprefix("al-")
                    if len(" ".join(words)) > len(shown.get(key, "")):
                        shown[key] = " ".join(words)
                    ids = found.setdefault(key, [])
                    if passage_id not in ids:
                        ids.append(passage_id)
    return [Named(shown[key], tuple(ids)) for key, ids in found.items()]
