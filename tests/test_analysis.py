"""index.analysis: words to index terms, and text to sentences whose spans are offsets into the original."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from nltk.stem.snowball import SnowballStemmer

from index.analysis import Analyzer, SentenceSplitter, fold_text, load_word_list
from index.corpus import parse_file, scan_corpus

from tests.conftest import SHIPPED_CORPUS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.fixture(scope="module")
def seed_paragraphs() -> list[str]:
    files, problems = scan_corpus(SHIPPED_CORPUS)
    assert not problems
    return [p.text for f in files for a in parse_file(f)[0] for p in a.paragraphs]


@pytest.fixture(scope="module")
def splitter(seed_paragraphs: list[str]) -> SentenceSplitter:
    return SentenceSplitter.train(seed_paragraphs)


# -- normalisation ---------------------------------------------------------------------------------


def test_fold_text_straightens_quotes_dashes_and_spaces_keeping_length():
    text = "Egypt\u2019s \u201cally\u201d \u2018Haftar\u2019 \u2014 east\u2013west\u00a0coast\u202fnow"
    folded = fold_text(text)
    assert folded == "Egypt's \"ally\" 'Haftar' - east-west coast now"
    assert len(folded) == len(text)


def test_curly_and_straight_punctuation_give_the_same_terms(analyzer):
    curly = "Haftar\u2019s \u201cforces\u201d \u2014 the Libyan\u2013Sudanese border"
    straight = "Haftar's \"forces\" - the Libyan-Sudanese border"
    assert analyzer.tokenize(curly) == analyzer.tokenize(straight) == ["haftar", "forc", "libyan", "sudanes", "border"]


def test_case_is_folded(analyzer):
    assert analyzer.tokenize("HAFTAR Haftar haftar") == ["haftar"] * 3


@pytest.mark.parametrize("word", ["Haftar\u2019s", "Haftar's", "HAFTAR'S", "Haftar"])
def test_possessive_gives_the_name_itself(analyzer, word):
    assert analyzer.tokenize(word) == ["haftar"]


@pytest.mark.parametrize("name", ["al-Sisi", "Al-Sisi", "El-Sisi", "Sisi"])
def test_arabic_article_is_dropped_from_hyphenated_names(analyzer, name):
    assert analyzer.tokenize(name) == ["sisi"]


def test_prefixed_and_bare_names_match(analyzer):
    assert analyzer.tokenize("Ahmad al-Mismari") == analyzer.tokenize("Ahmad Mismari") == ["ahmad", "mismari"]


def test_hyphenated_compound_yields_each_part(analyzer):
    assert analyzer.tokenize("Libyan-Sudanese") == analyzer.tokenize("Libyan") + analyzer.tokenize("Sudanese")
    assert analyzer.tokenize("Libyan-Sudanese") == ["libyan", "sudanes"]


def test_dotted_abbreviation_is_one_term(analyzer):
    assert analyzer.tokenize("U.N.") == analyzer.tokenize("UN") == ["un"]
    assert analyzer.tokenize("the U.N.-backed government") == ["un", "back", "govern"]


def test_us_abbreviation_is_not_the_stopword(analyzer):
    assert analyzer.tokenize("U.S.") == ["us"]
    assert analyzer.tokenize("US") == ["us"]
    assert analyzer.tokenize("the U.S. envoy") == ["us", "envoy"]


def test_lowercase_us_is_a_stopword(analyzer):
    assert analyzer.tokenize("they told us") == ["told"]


@pytest.mark.parametrize(("acronym", "lower"), [("IT", "it"), ("WHO", "who")])
def test_all_capitals_acronym_survives_while_the_stopword_goes(analyzer, acronym, lower):
    assert analyzer.tokenize(acronym) == [lower]
    assert analyzer.tokenize(lower) == []


def test_every_shipped_stopword_is_dropped(analyzer):
    stopwords = load_word_list("stopwords.txt")
    assert len(stopwords) > 100
    assert {w for w in stopwords if analyzer.tokenize(w)} == set()
    assert analyzer.tokenize("the ports of the east") == ["port", "east"]


def test_terms_are_snowball_stems(analyzer):
    stem = SnowballStemmer("english").stem
    words = ["bombing", "bombed", "forces", "militias", "negotiating", "strongman", "terminals"]
    assert analyzer.tokenize(" ".join(words)) == [stem(w) for w in words]
    assert analyzer.tokenize("bombing bombed bombs") == ["bomb"] * 3


def test_numbers_keep_their_separators_as_one_term(analyzer):
    assert analyzer.tokenize("1,800 fighters and 3.36bn") == ["1800", "fighter", "3.36bn"]


def test_word_spans_are_offsets_into_the_original_text(analyzer):
    text = "Egypt\u2019s \u201cal-Sisi\u201d\u00a0met U.N. envoys"
    spans = analyzer.word_spans(text)
    assert [text[s:e] for s, e, _ in spans] == ["Egypt\u2019s", "al-Sisi", "met", "U.N.", "envoys"]
    assert [terms for _, _, terms in spans] == [("egypt",), ("sisi",), ("met",), ("un",), ("envoy",)]


def test_analysis_needs_no_nltk_data(tmp_path):
    """A fresh interpreter whose NLTK can find no data at all, and may not download any, still analyses."""
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    script = textwrap.dedent("""
        import json, nltk
        nltk.data.path[:] = [%r]
        def refuse(*args, **kwargs):
            raise AssertionError("nltk.download called")
        nltk.download = refuse
        for resource in ("corpora/stopwords", "tokenizers/punkt", "tokenizers/punkt_tab"):
            try:
                nltk.data.find(resource)
            except LookupError:
                pass
            else:
                raise AssertionError(resource + " is installed")
        from index.analysis import Analyzer, SentenceSplitter
        splitter = SentenceSplitter.train(["Gen. Haftar met the envoy. He left.", "Mr. Smith said so. Then he went home."])
        print(json.dumps({"terms": Analyzer().tokenize("The militias\u2019 leaders were bombing"),
                          "sentences": splitter.split("Gen. Haftar met Mr. Smith. They talked.")}))
    """ % str(empty))
    env = dict(os.environ, NLTK_DATA=str(empty), HOME=str(tmp_path), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"terms": ["militia", "leader", "bomb"],
                                       "sentences": ["Gen. Haftar met Mr. Smith.", "They talked."]}


# -- sentences -------------------------------------------------------------------------------------


def assert_spans_cover(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans in order, text between and around them only whitespace."""
    position = 0
    for start, end in spans:
        assert start >= position and end > start
        assert text[position:start].strip() == ""
        position = end
    assert text[position:].strip() == ""


def test_sentences_are_verbatim_slices_with_curly_quotes_and_nbsp(splitter):
    text = ("The U.N. envoy met Gen. Haftar on Monday. Mr. Smith said \u201cit ended.\u201d "
            "Then\u00a0he left. Dr. Jones agreed.")
    spans = splitter.spans(text)
    assert_spans_cover(text, spans)
    assert [text[s:e] for s, e in spans] == [
        "The U.N. envoy met Gen. Haftar on Monday.",
        "Mr. Smith said \u201cit ended.\u201d",
        "Then\u00a0he left.",
        "Dr. Jones agreed.",
    ]


def test_closing_curly_quote_ends_a_sentence(splitter):
    text = "He said \u201cWe will win.\u201d The army moved on."
    assert splitter.split(text) == ["He said \u201cWe will win.\u201d", "The army moved on."]


@pytest.mark.parametrize("abbreviation", ["U.N.", "U.S.", "Gen.", "Mr.", "Dr.", "Col."])
def test_abbreviations_do_not_end_sentences(splitter, abbreviation):
    text = f"Officials said {abbreviation} Haftar visited Cairo on Monday. The talks ended."
    assert splitter.split(text) == [f"Officials said {abbreviation} Haftar visited Cairo on Monday.", "The talks ended."]


def test_shipped_abbreviations_work_without_training():
    splitter = SentenceSplitter()
    assert splitter.split("Gen. Haftar met Mr. Putin. They talked.") == ["Gen. Haftar met Mr. Putin.", "They talked."]


def test_every_seed_paragraph_splits_into_verbatim_sentences(splitter, seed_paragraphs):
    assert len(seed_paragraphs) > 100
    for paragraph in seed_paragraphs:
        spans = splitter.spans(paragraph)
        assert spans, paragraph
        assert_spans_cover(paragraph, spans)


def test_trained_splitter_survives_json(splitter, seed_paragraphs):
    restored = SentenceSplitter.from_json(splitter.to_json())
    assert restored.params.abbrev_types == splitter.params.abbrev_types
    for paragraph in seed_paragraphs:
        assert restored.spans(paragraph) == splitter.spans(paragraph)
