"""Compares kaizen-text with TextBlob on the same texts: sentiment (polarity, subjectivity,
assessments), PatternTagger's tags, pattern's full Brill tags and chunks, and prints the noun
phrases side by side.

    python crates/kaizen-text/examples/textblob_parity.py [TEXTS.json ...]

Needs `textblob` importable (no NLTK data) and cargo; builds and runs the `textblob_parity`
example with the data files of the installed textblob package. Texts default to the e2e
fixtures plus a few more; exits 1 on any disagreement beyond 1e-9.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import textblob
from textblob import TextBlob
from textblob._text import find_chunks, find_tags
from textblob.en import lexicon, parser, tag

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(textblob.__file__).parent / "en"
EXTRA = [
    "I can't believe the new phone works so well.",
    "Apple is looking at buying a U.K. startup for $1 billion.",
    "We need to book a flight to New York City next week.",
    "Machine learning models require large training data sets.",
    "She runs the data platform team at Google in London.",
    "The running water was cold and the old man coughed.",
    "Where is the nearest train station? I really do not know :-) ;-) :o) :c)",
    "Send it to ann@example.org or www.example.com, http://example.org/x thanks!!",
    "He said \"it's 'great'\" (really!) -- and left...  OK?",
    "A very very very nice, not so nice, never nice, not a nice day!",
    "",
    "   ",
    "!!! ??? ...",
    "🙂 ♥ <3 :'( :'''( >:D o_O",
]


def brill(text: str) -> tuple[list, list]:
    tags, chunks = [], []
    for sentence in parser.find_tokens(text):
        tagged = find_tags(sentence.split(" "), lexicon=lexicon, morphology=lexicon.morphology,
                           context=lexicon.context, entities=lexicon.entities, language="en")
        tags += [tuple(t) for t in tagged]
        chunks += [c[2] for c in find_chunks([list(t) for t in tagged])]
    return tags, chunks


def main() -> int:
    files = [Path(a) for a in sys.argv[1:]] or [ROOT / "tests/fixtures/text/sentiment.json"]
    texts = [t for f in files for t in json.loads(f.read_text())] + EXTRA
    env = dict(os.environ, CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")))
    proc = subprocess.run(
        ["cargo", "run", "-q", "-p", "kaizen-text", "--example", "textblob_parity", "--", str(DATA)],
        input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 2
    ours = [json.loads(line) for line in proc.stdout.splitlines()]
    worst, failures = 0.0, 0
    for text, got in zip(texts, ours, strict=True):
        s = TextBlob(text).sentiment_assessments
        diff = max(abs(s.polarity - got["sentiment"]["polarity"]),
                   abs(s.subjectivity - got["sentiment"]["subjectivity"]))
        worst = max(worst, diff)
        theirs_a = [(w, round(p, 12), round(sj, 12), x) for w, p, sj, x in s.assessments]
        ours_a = [(a["words"], round(a["polarity"], 12), round(a["subjectivity"], 12), a["kind"])
                  for a in got["sentiment"]["assessments"]]
        tags = [tuple(t) for t in tag(text)]
        btags, bchunks = brill(text)
        checks = {
            "sentiment": diff <= 1e-9,
            "assessments": theirs_a == ours_a,
            "tags": tags == [tuple(t) for t in got["tags"]],
            "brill tags": btags == [tuple(t) for t in got["tags_brill"]],
            "brill chunks": bchunks == got["chunks_brill"],
        }
        bad = [k for k, ok in checks.items() if not ok]
        failures += bool(bad)
        print(f"{'FAIL ' + ','.join(bad) if bad else 'ok'}\t{s.polarity:+.4f} {s.subjectivity:.4f}\t"
              f"{text[:60]!r}\tphrases={got['phrases']}")
        if bad:
            print("   textblob:", s, "\n   kaizen:  ", got["sentiment"])
            if "tags" in bad:
                print("   tags textblob:", tags, "\n   tags kaizen:  ", got["tags"])
            if "brill tags" in bad or "brill chunks" in bad:
                print("   brill textblob:", btags, bchunks, "\n   brill kaizen:  ", got["tags_brill"], got["chunks_brill"])
    print(f"{len(texts)} texts, {failures} with differences; max |polarity or subjectivity diff| = {worst:.3g}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
