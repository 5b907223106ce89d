"""Classic text analysis: `kaizen sentiment` against TextBlob's own `TextBlob(s).sentiment` (its
default PatternAnalyzer) on the fixture sentences of tests/fixtures/text/sentiment.json, polarity
and subjectivity within 1e-6 and the same assessed words; `kaizen phrases` on clear sentences; the
bad inputs.

The data are pattern.en's files from the PyPI package textblob (requirements-text.txt), which
scripts/setup.sh copies to models/textblob (KAIZEN_MODELS points elsewhere). TextBlob's sentiment
needs no NLTK data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import e2e_util as u

pytestmark = pytest.mark.kaizen_only

MODELS = Path(os.environ.get("KAIZEN_MODELS", str(u.REPO_ROOT / "models")))
DATA = MODELS / "textblob"
SENTENCES = json.loads((u.REPO_ROOT / "tests" / "fixtures" / "text" / "sentiment.json").read_text())
TOL = 1e-6


@pytest.fixture(scope="module")
def data_dir():
    if not (DATA / "en-sentiment.xml").is_file():
        pytest.fail(f"no TextBlob data at {DATA}: run scripts/setup.sh (it copies pattern.en's files from "
                    f"the PyPI package textblob) or set KAIZEN_MODELS", pytrace=False)
    return DATA


@pytest.fixture
def kaizen(kaizen_bin, data_dir, tmp_path):
    env = dict(os.environ, KAIZEN_MODELS=str(data_dir.parent), KAIZEN_HOME=str(tmp_path / "home"))

    def run(*args, check=True):
        proc = subprocess.run([str(kaizen_bin), *args], capture_output=True, text=True, timeout=120, env=env)
        if check:
            assert proc.returncode == 0, f"kaizen {' '.join(args)} failed:\n{proc.stderr}"
        return proc

    return run


def test_fixtures_cover_the_cases():
    assert len(SENTENCES) >= 30
    joined = " ".join(SENTENCES)
    for needle in (" not ", " never ", " very ", "!", ":)", ":(", "(!)", "\n\n", "“", "Mr."):
        assert needle in joined, needle


@pytest.mark.parametrize("text", SENTENCES, ids=[f"s{i:02d}" for i in range(len(SENTENCES))])
def test_sentiment_matches_textblob(kaizen, text):
    from textblob import TextBlob

    expected = TextBlob(text).sentiment_assessments
    got = json.loads(kaizen("sentiment", "--text", text, "--json").stdout)
    assert set(got) == {"polarity", "subjectivity", "label", "assessments"}
    assert abs(got["polarity"] - expected.polarity) <= TOL, (got, expected)
    assert abs(got["subjectivity"] - expected.subjectivity) <= TOL, (got, expected)
    assert [a["words"] for a in got["assessments"]] == [a[0] for a in expected.assessments]
    for ours, theirs in zip(got["assessments"], expected.assessments):
        assert set(ours) == {"words", "polarity", "subjectivity", "kind"}
        assert abs(ours["polarity"] - theirs[1]) <= TOL and abs(ours["subjectivity"] - theirs[2]) <= TOL
        assert ours["kind"] == theirs[3]
    # pattern.en's positive() threshold.
    label = "positive" if got["polarity"] >= 0.1 else "negative" if got["polarity"] <= -0.1 else "neutral"
    assert got["label"] == label


def test_sentiment_of_the_clear_cases(kaizen):
    def label(text):
        return json.loads(kaizen("sentiment", "--text", text, "--json").stdout)["label"]

    assert label("What a wonderful, beautiful day!") == "positive"
    assert label("The hotel room was dirty, small and ugly.") == "negative"
    assert label("The train leaves from platform 9.") == "neutral"


PHRASES = {
    "The lazy dog slept under the old oak tree.": ["lazy dog", "old oak tree"],
    "She runs the data platform team at Google in London.": ["data platform team", "google", "london"],
    "Mr. Smith said the U.S. economy is remarkably strong today.": ["mr. smith", "u.s. economy"],
    "The European Central Bank raised interest rates in Frankfurt on Thursday.":
        ["european central bank", "interest rates", "frankfurt", "thursday"],
    "My sister bought a red sports car and a small apartment in Paris.":
        ["red sports car", "small apartment", "paris"],
}


@pytest.mark.parametrize("text", list(PHRASES))
def test_phrases(kaizen, text):
    got = json.loads(kaizen("phrases", "--text", text, "--json").stdout)
    assert set(got) == {"phrases"}
    phrases = got["phrases"]
    for phrase in phrases:
        assert phrase == phrase.lower()
        assert phrase in text.lower(), f"{phrase!r} is not in {text!r}"
    for expected in PHRASES[text]:
        assert expected in phrases, phrases
    # In order of appearance.
    positions = [text.lower().index(p) for p in PHRASES[text]]
    assert positions == sorted(positions)


def assert_fails(proc, *needles, code=1):
    assert proc.returncode == code, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert proc.stdout == ""
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_bad_input_is_refused_clearly(kaizen, data_dir, tmp_path):
    for command in ("sentiment", "phrases"):
        assert_fails(kaizen(command, "--text", "", "--json", check=False), "empty")
        assert_fails(kaizen(command, "--text", "  \n\t ", check=False), "empty")
    empty = tmp_path / "nowhere"
    empty.mkdir()
    assert_fails(kaizen("sentiment", "--text", "good", "--data", str(empty), check=False), "en-sentiment.xml")
    assert_fails(kaizen("phrases", "--text", "a good day", "--data", str(empty), check=False), "en-lexicon.txt")
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    (broken / "en-sentiment.xml").write_text("<sentiment><word form=")
    proc = kaizen("sentiment", "--text", "good", "--data", str(broken), check=False)
    assert proc.returncode != 0 and "en-sentiment.xml" in proc.stderr, proc.stderr
