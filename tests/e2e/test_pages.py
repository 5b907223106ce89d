"""The task pages of `kaizen server` (/app/summarize, /app/sentiment, /app/phrases, /app/embed,
/app/ask, /app/transcribe) in
a real browser: Debian's Chromium driven by Playwright (tests/browser/pages.mjs, npm package
playwright-core), against the server with the pretrained model and pattern.en's data installed
by scripts/setup.sh, and the local stand-in of the web and the MediaWiki API.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import requests

import e2e_util as u
from test_pretrained import MODELS

pytestmark = pytest.mark.kaizen_only

BROWSER_TESTS = u.REPO_ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def server(kaizen_bin, tmp_path, monkeypatch, web, speech_models):
    for needed in (MODELS / "all-MiniLM-L6-v2" / "model.safetensors", MODELS / "textblob" / "en-sentiment.xml",
                   MODELS / "SmolLM2-135M-Instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"):
        if not needed.is_file():
            pytest.fail(f"{needed} is missing: run scripts/setup.sh", pytrace=False)
    # The installed models, and Whisper tiny.en as `kaizen models import` converts it.
    monkeypatch.setenv("KAIZEN_MODELS", str(speech_models))
    # The local LLM's CPU workers spin at barriers; with Chromium busy, one thread is faster.
    monkeypatch.setenv("RAYON_NUM_THREADS", "1")
    monkeypatch.setenv("KAIZEN_WIKI_API", f"{web.url}/w/api.php")
    srv = u.start_server("sqlite", u.sqlite_uri(tmp_path / "kaizen.db"), tmp_path / "server",
                         kind="kaizen", extra_args=["--allow-fetch"])
    yield srv
    srv.stop()


def test_pages_are_served(server):
    r = requests.get(f"{server.url}/app", timeout=30, allow_redirects=False)
    assert r.status_code in (303, 307, 308) and r.headers["location"] == "/app/summarize"
    for task in ("summarize", "sentiment", "phrases", "embed", "ask", "transcribe"):
        r = requests.get(f"{server.url}/app/{task}", timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f'data-task="{task}"' in r.text
    r = requests.get(f"{server.url}/app/nothing", timeout=30)
    assert r.status_code == 404 and "/app/sentiment" in r.text


def test_pages_in_chromium(server, web, tmp_path, speech_wavs):
    if not (BROWSER_TESTS / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run scripts/setup.sh", pytrace=False)
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/setup.sh", pytrace=False)
    proc = subprocess.run(
        ["node", "pages.mjs", server.url, web.url],
        cwd=BROWSER_TESTS, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, CHROMIUM=CHROMIUM, SCREENSHOTS=str(tmp_path),
                 SPEECH_WAV=str(speech_wavs["garden"][0])),
    )
    print(proc.stdout)
    assert proc.returncode == 0, f"browser checks failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.count("ok - ") >= 13
