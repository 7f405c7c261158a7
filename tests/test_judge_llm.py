"""The LLM judge against a local stub of an OpenAI-compatible server that prefers the answer containing GOOD."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from personalign.data_dir import default_data_dir
from personalign.errors import PersonalignError
from personalign.evaluation.judges.llm import TARBALL, LLMJudge, load_templates, parse_verdict
from personalign.evaluation.judges.registry import load_judge


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def _stub_reply(user: str) -> str:
    """What the stub 'model' answers for the pair in example 4 of the filled template."""
    instruction = _between(user, "### Instruction 4:", "### Output (a) for example 4:")
    first = _between(user, "### Output (a) for example 4:", "### Output (b) for example 4:")
    second = _between(user, "### Output (b) for example 4:", "## Preferred Output for example 4:")
    if "UNPARSEABLE" in instruction:
        return "Both have merits; I would rather not choose."
    winner = {(True, False): "Output (a)", (False, True): "Output (b)"}.get(("GOOD" in first, "GOOD" in second),
                                                                         "TIE")
    if "BARE" in instruction:  # no result heading: the last verdict mentioned counts
        return f"Output (a) and Output (b) differ. {winner}"
    # the thought names the loser first, so only reading the result section gets this right
    loser = "Output (b)" if winner == "Output (a)" else "Output (a)"
    return f"### Thought for example 4:\n{loser} lacks the word.\n\n### Result for example 4:\n{winner}"


class StubServer(ThreadingHTTPServer):
    """POST /v1/chat/completions on a free local port; remembers every request body."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class StubHandler(BaseHTTPRequestHandler):
    """Answers like a chat model judging with the template, or with HTTP 500 when the instruction says FAIL."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        user = body["messages"][-1]["content"]
        if "FAIL" in _between(user, "### Instruction 4:", "### Output (a) for example 4:"):
            self.send_error(500, "overloaded")
            return
        answer = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": _stub_reply(user)}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def templates_available():
    tarball = default_data_dir() / TARBALL
    if not tarball.is_file():
        pytest.skip(f"P-SOUPS judge prompts not found at {tarball}: set PERSONALIGN_DATA to the shared data dir")


@pytest.fixture(scope="module")
def running_server(templates_available):
    stub = StubServer()
    threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield stub
    stub.shutdown()
    stub.server_close()


@pytest.fixture
def server(running_server):
    running_server.requests.clear()
    return running_server


def _shown_first(request: dict) -> bool:
    """Whether the stub saw the GOOD answer as Output (a)."""
    user = request["messages"][-1]["content"]
    return "GOOD" in _between(user, "### Output (a) for example 4:", "### Output (b) for example 4:")


def test_picks_the_better_answer_wherever_it_is_shown(server):
    judge = LLMJudge("stub-model", server.base_url)
    prompts = [f"Question {i}?" for i in range(16)]
    good = [f"A GOOD answer {i}." for i in range(16)]
    plain = [f"An answer {i}." for i in range(16)]
    assert judge.compare("friendly", prompts, good, plain) == [1.0] * 16
    shown_first = [_shown_first(r) for r in server.requests]
    assert any(shown_first) and not all(shown_first)  # both positions were used
    assert judge.compare("friendly", prompts, plain, good) == [0.0] * 16
    assert judge.unparsed == 0


def test_shown_order_is_reproducible_by_seed(server):
    prompts, good, plain = [f"Q{i}" for i in range(12)], ["GOOD"] * 12, ["meh"] * 12

    def order(seed):
        server.requests.clear()
        LLMJudge("stub-model", server.base_url, seed=seed).compare("concise", prompts, good, plain)
        return sorted((r["messages"][-1]["content"].split("### Instruction 4:")[1][:8], _shown_first(r))
                      for r in server.requests)
    assert order(0) == order(0)
    assert order(0) != order(1)


def test_request_carries_template_and_decoding_settings(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    judge = load_judge(f"llm:stub-model@{server.base_url}")
    judge.compare("elementary", ["Explain rain."], ["Water falls. GOOD"], ["Precipitation ensues."])
    request, = server.requests
    system_text = load_templates()["elementary"][0]["content"]
    assert system_text.startswith("You are a helpful following assistant")
    assert "elementary school student" in system_text
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    assert request["model"] == "stub-model"
    assert (request["temperature"], request["max_tokens"]) == (0.1, 512)
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert request["messages"][0]["content"] == system_text
    user = request["messages"][1]["content"]
    assert "### Instruction 4:\nExplain rain.\n" in user and "{output_1}" not in user


def test_ties_bare_verdicts_and_unparseable_replies(server):
    judge = LLMJudge("stub-model", server.base_url)
    prompts = ["Tie?", "BARE question", "BARE question", "UNPARSEABLE", "UNPARSEABLE too"]
    a = ["GOOD one", "GOOD one", "plain", "GOOD", "x"]
    b = ["GOOD two", "plain", "GOOD {output_1} <|im_end|>", "plain", "y"]  # placeholders and chatml in answers
    assert judge.compare("sassy", prompts, a, b) == [0.5, 1.0, 0.0, 0.5, 0.5]
    assert judge.unparsed == 2


def test_failures_raise_one_line_errors(server):
    judge = LLMJudge("stub-model", server.base_url, max_retries=0)
    with pytest.raises(PersonalignError, match="LLM judge stub-model at .* failed: .*500"):
        judge.compare("expert", ["FAIL"], ["a"], ["b"])
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = LLMJudge("stub-model", f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(PersonalignError, match=r"failed: Connection error") as error:
        refused.compare("expert", ["q"], ["a"], ["b"])
    assert "\n" not in str(error.value)
    with pytest.raises(PersonalignError, match="cannot judge 'verbose'"):
        judge.compare("verbose", ["q"], ["a"], ["b"])
    with pytest.raises(PersonalignError, match="only compares pairs"):
        judge.score("expert", ["q"], ["a"])


def test_parse_verdict():
    assert parse_verdict("### Thought for example 4:\nOutput (b) is dull.\n\n### Result for example 4:\n"
                         "Output (a)") == "a"
    assert parse_verdict("### Result for Example 4: Output(b)\n\n### Note\nOutput (a) was close") == "b"
    assert parse_verdict("### Result for example 4:\nTIE") == "tie"
    assert parse_verdict("### Result for example 4:\nOutput (a) and Output (b)") is None  # degenerate
    assert parse_verdict("I like Output (a), but Output (b) is better: Output (b)") == "b"
    assert parse_verdict("No idea.") is None


def test_spec_and_missing_prompts(tmp_path):
    with pytest.raises(PersonalignError, match="MODEL@BASE_URL"):
        LLMJudge.from_spec("gpt-4o")
    with pytest.raises(PersonalignError, match="MODEL@BASE_URL"):
        LLMJudge.from_spec("gpt-4o@api.openai.com")
    with pytest.raises(PersonalignError, match=f"not found at {tmp_path / TARBALL}: set PERSONALIGN_DATA"):
        LLMJudge("m", "http://127.0.0.1:1/v1", data_dir=tmp_path)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONALIGN_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path.resolve()
    monkeypatch.delenv("PERSONALIGN_DATA")
    repo = Path(__file__).resolve().parents[1]
    assert default_data_dir() == (repo.parent / "shared" / "data").resolve()
