"""`kaizen ask` and `POST /v1/ask`: passages of a context retrieved by embeddings (all-MiniLM-L6-v2),
answered extractively (the sentence of the fixture article that answers the question) or by an
OpenAI-compatible provider. The vendor cannot be reached from here, so the provider is a stand-in
written below (http.server on 127.0.0.1) that records what kaizen sends and answers as OpenAI does,
errors included.
"""

from __future__ import annotations

import json
import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

import e2e_util as u

pytestmark = pytest.mark.kaizen_only

FIXTURES = u.REPO_ROOT / "tests" / "fixtures" / "pretrained"
ARTICLE = FIXTURES / "article.txt"
MODELS = Path(os.environ.get("KAIZEN_MODELS", str(u.REPO_ROOT / "models")))
MODEL = MODELS / "all-MiniLM-L6-v2"

QUESTION = "How much did the plant cost?"
# The one sentence of the article that answers QUESTION.
COST = "The plant cost 212 million euros, of which the regional government paid about a third."
LLM_ANSWER = "The plant cost 212 million euros; the regional government paid about a third."


def normalized(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def model_dir():
    if not (MODEL / "model.safetensors").is_file():
        pytest.fail(f"no embedding model at {MODEL}: run scripts/setup.sh or set KAIZEN_MODELS", pytrace=False)
    return MODEL


@pytest.fixture
def kaizen(kaizen_bin, model_dir, tmp_path):
    env = dict(os.environ, KAIZEN_MODELS=str(model_dir.parent), KAIZEN_HOME=str(tmp_path / "home"))
    # The key comes from the environment: the tests decide whether there is one.
    for name in ("OPENAI_API_KEY", "KAIZEN_LLM_BASE_URL", "KAIZEN_LLM_MODEL", "KAIZEN_LLM_API_KEY"):
        env.pop(name, None)

    def run(*args, check=True, env_extra=None, stdin=None):
        proc = subprocess.run([str(kaizen_bin), *args], capture_output=True, text=True, timeout=300,
                              env={**env, **(env_extra or {})}, input=stdin)
        if check:
            assert proc.returncode == 0, f"kaizen {' '.join(args)} failed:\n{proc.stderr}"
        return proc

    return run


def completion(text: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "tiny-llm",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class OpenAIStandIn(u.LocalServer):
    """A local stand-in for an OpenAI-compatible API: `POST /v1/chat/completions` records the path,
    the Authorization header and the JSON body of each request, and answers `self.reply`
    (status, JSON body)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply = (200, completion(LLM_ANSWER))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "content_type": self.headers.get("Content-Type"),
                                       "body": json.loads(body)})
                status, payload = outer.reply if self.path == "/v1/chat/completions" else (404, {})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)
        self.url = f"{self.base}/v1"


@pytest.fixture
def llm():
    server = OpenAIStandIn()
    yield server
    server.close()




def assert_answer(answer: dict, question: str, top_k: int = 3):
    assert list(answer) == ["answer", "method", "model", "passages", "question"], answer
    assert answer["question"] == question
    passages = answer["passages"]
    assert 1 <= len(passages) <= top_k
    flat = normalized(ARTICLE.read_text())
    for p in passages:
        assert list(p) == ["text", "score", "index"], p
        assert p["text"] in flat, f"not a passage of the article: {p['text']!r}"
        assert -1.0 <= p["score"] <= 1.0
    indices = [p["index"] for p in passages]
    assert indices == sorted(set(indices)), "passages out of context order"


def top_passage(answer: dict) -> str:
    return max(answer["passages"], key=lambda p: p["score"])["text"]


def assert_fails(proc, *needles, code=1):
    assert proc.returncode == code, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert proc.stdout == ""
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------------------
# Extractive: no generation, the answer is a sentence of the context.


def test_extractive_answer_is_the_sentence_that_answers(kaizen, web):
    answer = json.loads(kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--json").stdout)
    assert_answer(answer, QUESTION)
    assert answer["answer"] == COST
    assert answer["method"] == "extractive"
    assert answer["model"] == "all-MiniLM-L6-v2"
    assert len(answer["passages"]) == 3
    assert COST in top_passage(answer)

    # Another question, another sentence.
    why = "Why did the engineers choose the channel?"
    other = json.loads(kaizen("ask", "--context", str(ARTICLE), "--question", why, "--json").stdout)
    assert other["answer"] == "Engineers chose the channel because the tide there is strong and predictable."

    # The same from stdin, inline text and the article as a web page; --top-k bounds the passages.
    text = ARTICLE.read_text()
    stdin = json.loads(kaizen("ask", "--context", "-", "--question", QUESTION, "--json", stdin=text).stdout)
    assert stdin == answer
    inline = json.loads(kaizen("ask", "--context-text", text, "--question", QUESTION, "--json").stdout)
    assert inline == answer
    page = json.loads(kaizen("ask", "--url", f"{web.url}/article.html", "--question", QUESTION, "--top-k", "1",
                             "--json").stdout)
    assert page["answer"] == COST and len(page["passages"]) == 1

    # Text output: the answer, then how it was made, then the passages with their scores.
    lines = kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION).stdout.splitlines()
    assert lines[0] == COST
    assert lines[1] == ""
    assert lines[2].startswith("method: extractive")
    assert len(lines) == 6
    for line, p in zip(lines[3:], answer["passages"]):
        assert line == f"[{p['index']}] {p['score']:.3f}  {p['text']}"


# --------------------------------------------------------------------------------------------
# An OpenAI-compatible provider: the stand-in.


def test_openai_provider_gets_the_question_and_the_passages(kaizen, llm):
    extractive = json.loads(kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--json").stdout)
    proc = kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai",
                  "--base-url", llm.url, "--model", "tiny-llm", "--json",
                  env_extra={"OPENAI_API_KEY": "sk-test-123"})
    answer = json.loads(proc.stdout)
    assert_answer(answer, QUESTION)
    assert answer["answer"] == LLM_ANSWER
    assert answer["method"] == "openai"
    assert answer["model"] == "tiny-llm"
    assert answer["passages"] == extractive["passages"]

    assert len(llm.requests) == 1
    request = llm.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test-123"
    assert request["content_type"].startswith("application/json")
    body = request["body"]
    assert body["model"] == "tiny-llm"
    assert body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and "only" in system["content"]
    assert user["role"] == "user"
    assert QUESTION in user["content"]
    assert top_passage(answer) in user["content"]
    for n, p in enumerate(answer["passages"], 1):
        assert f"[{n}] {p['text']}" in user["content"]

    # Text output prints the provider's answer first.
    out = kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai",
                 "--base-url", llm.url, "--model", "tiny-llm", env_extra={"OPENAI_API_KEY": "sk-test-123"}).stdout
    assert out.splitlines()[0] == LLM_ANSWER
    assert "method: openai" in out

    # The key's variable can be renamed; without a key no Authorization header is sent.
    kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai", "--base-url",
           llm.url, "--model", "tiny-llm", "--api-key-env", "MY_LLM_KEY", env_extra={"MY_LLM_KEY": "sk-mine"})
    assert llm.requests[-1]["auth"] == "Bearer sk-mine"
    kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai", "--base-url",
           llm.url, "--model", "tiny-llm")
    assert llm.requests[-1]["auth"] is None


def test_openai_provider_errors(kaizen, llm):
    def ask(*extra, env_extra=None):
        return kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai",
                      "--base-url", llm.url, "--model", "tiny-llm", *extra, check=False,
                      env_extra=env_extra or {"OPENAI_API_KEY": "sk-wrong"})

    llm.reply = (401, {"error": {"message": "Incorrect API key provided: sk-wrong.", "type": "invalid_request_error",
                                 "param": None, "code": "invalid_api_key"}})
    assert_fails(ask(), "openai", "401", "Incorrect API key provided")
    llm.reply = (200, {"choices": []})
    assert_fails(ask(), "openai", "200", "choices[0].message.content")
    closed = u.free_port()
    assert_fails(kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai",
                        "--base-url", f"http://127.0.0.1:{closed}/v1", "--model", "tiny-llm", check=False),
                 "openai", "cannot connect")


def test_bad_input_is_refused_clearly(kaizen, llm):
    def ask(*args):
        return kaizen("ask", *args, check=False)

    assert_fails(ask("--context", str(ARTICLE), "--question", "   "), "question is empty")
    assert_fails(ask("--context-text", "  ", "--question", QUESTION), "context is empty")
    assert_fails(ask("--question", QUESTION), "give the context")
    assert_fails(ask("--context", str(ARTICLE), "--question", QUESTION, "--provider", "local", "--base-url",
                     llm.url), "--base-url is for --provider openai")
    assert_fails(ask("--context", str(ARTICLE), "--question", QUESTION, "--provider", "magic"), "magic")
    assert_fails(ask("--context", str(ARTICLE), "--question", QUESTION, "--provider", "openai",
                     "--base-url", llm.url), "--model")
    assert_fails(ask("--context", str(ARTICLE), "--question", QUESTION, "--model", "tiny-llm"), "the openai and local providers")
    assert_fails(ask("--context", str(ARTICLE), "--question", QUESTION, "--top-k", "0"), "--top-k")
    assert_fails(ask("--context", "/nonexistent/context.txt", "--question", QUESTION), "context.txt")
    # Nothing reached the provider.
    assert llm.requests == []


# --------------------------------------------------------------------------------------------
# POST /v1/ask on `kaizen server`; the provider's address and key are the server's.


@pytest.fixture
def server(kaizen_bin, model_dir, tmp_path, monkeypatch, llm, web):
    monkeypatch.setenv("KAIZEN_MODELS", str(model_dir.parent))
    monkeypatch.setenv("KAIZEN_LLM_BASE_URL", llm.url)
    monkeypatch.setenv("KAIZEN_LLM_MODEL", "tiny-llm")
    monkeypatch.setenv("KAIZEN_LLM_API_KEY", "sk-server")
    srv = u.start_server("sqlite", u.sqlite_uri(tmp_path / "kaizen.db"), tmp_path / "server",
                         kind="kaizen", extra_args=["--allow-fetch"])
    yield srv
    srv.stop()


def test_http_ask(server, kaizen, llm, web):
    text = ARTICLE.read_text()

    def ask(body):
        return requests.post(f"{server.url}/v1/ask", json=body, timeout=120)

    r = ask({"question": QUESTION, "text": text})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert_answer(answer, QUESTION)
    assert answer["answer"] == COST and answer["method"] == "extractive"
    cli = json.loads(kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--json").stdout)
    assert answer == cli

    r = ask({"question": QUESTION, "url": f"{web.url}/article.html", "top_k": 2})
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == COST and len(r.json()["passages"]) == 2

    r = ask({"question": QUESTION, "text": text, "provider": "openai"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert_answer(answer, QUESTION)
    assert answer["answer"] == LLM_ANSWER
    assert (answer["method"], answer["model"]) == ("openai", "tiny-llm")
    request = llm.requests[-1]
    assert request["auth"] == "Bearer sk-server"
    assert request["body"]["model"] == "tiny-llm"
    assert QUESTION in request["body"]["messages"][1]["content"]
    assert top_passage(answer) in request["body"]["messages"][1]["content"]

    # A request may choose the model, never the address.
    r = ask({"question": QUESTION, "text": text, "provider": "openai", "model": "tiny-llm-2"})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "tiny-llm-2" and llm.requests[-1]["body"]["model"] == "tiny-llm-2"
    seen = len(llm.requests)
    u.assert_error(ask({"question": QUESTION, "text": text, "provider": "openai", "base_url": "http://10.1.2.3/v1"}),
                   400, ["MALFORMED_REQUEST"])
    u.assert_error(ask({"question": "", "text": text}), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(ask({"question": QUESTION, "text": " "}), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(ask({"question": QUESTION}), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(ask({"question": QUESTION, "text": text, "top_k": 0}), 400, ["INVALID_PARAMETER_VALUE"])
    assert len(llm.requests) == seen


@pytest.mark.allow_5xx
def test_http_ask_provider_failures(server, llm):
    text = ARTICLE.read_text()

    llm.reply = (401, {"error": {"message": "Incorrect API key provided: sk-server.", "type": "invalid_request_error",
                                 "param": None, "code": "invalid_api_key"}})
    r = requests.post(f"{server.url}/v1/ask", json={"question": QUESTION, "text": text, "provider": "openai"},
                      timeout=120)
    body = u.assert_error(r, 503, ["TEMPORARILY_UNAVAILABLE"])
    assert "401" in body["message"]
    # What the provider said is for the server's log, not the caller.
    assert "Incorrect API key" not in body["message"]
    assert "Incorrect API key provided" in server.log_path.read_text()
