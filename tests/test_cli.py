"""The `personalign` command: one-line errors with exit code 2 before any model loads; JSON output on SmolLM2."""

import json
import subprocess
import sys

import pytest

from personalign.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["generate", "Hi", "-p", "concise", "--top-k", "0"], "top_k must be"),
    (["generate", "Hi", "-p", "concise", "--beta", "nan"], "beta must be a finite number"),
    (["generate", "Hi", "-p", "concise", "--beta", "inf"], "beta must be a finite number"),
    (["generate", "   ", "-p", "concise"], "the prompt is empty"),
    (["generate", "Hi", "--dims", "concise=0.5,nosuch=0.5"], "unknown preference dimension 'nosuch'"),
    (["generate", "Hi", "--method", "pad"], "needs --preference or --dims"),
    (["generate", "--input", "/no/such/file.jsonl"], "input file not found"),
    (["generate", "Hi", "-p", "concise", "--max-new-tokens", "0"], "max_new_tokens must be"),
    (["generate", "Hi", "-p", "concise", "--top-k", "ten"], "invalid int value"),
    (["generate", "Hi", "-p", "a", "-p", "b", "--stream"], "--stream shows one answer"),
    (["frobnicate"], "invalid choice"),
    (["generate", "Hi", "-p", "I love cats", "--method", "args"], "cannot score the free-text preference"),
    (["generate", "Hi", "-p", "concise", "--method", "args", "--reward-judge", "nope"], "unknown judge 'nope'"),
    (["eval", "--methods", "base,nope"], "unknown method 'nope'"),
    (["eval", "--beta", "1,x"], "argument --beta: 'x' is not a float"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("personalign: error: ") and message in err
    assert "Traceback" not in err and out == ""


def test_bad_jsonl_line_names_file_and_line(capsys, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "fine", "preference": "concise"}\n\n{"prompt": "x", "beta": "big"}\n')
    code, _, err = run(capsys, "generate", "--input", str(path))
    assert code == 2 and f"{path}:3:" in err
    path.write_text('{"prompt": "ok"}\n{not json}\n')
    code, _, err = run(capsys, "generate", "--input", str(path))
    assert code == 2 and f"{path}:2: not valid JSON" in err


def test_console_script_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "personalign.cli", "generate", "Hi", "--dims", "bogus"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr


def test_generate_json_on_real_smollm2(capsys, smollm2, tmp_path):
    """The real embedded model: one JSON object per answer, with the ids both models read and the new ids."""
    _, tokenizer = smollm2
    code, out, err = run(capsys, "generate", "What is the capital of France?", "--with-base", "-p", "concise",
                         "--max-new-tokens", "8", "--json", "--dtype", "float32")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["method"] for r in records] == ["base", "pad"]
    for record in records:
        assert record["token_ids"] and len(record["token_ids"]) <= 8
        assert tokenizer.decode(record["token_ids"], skip_special_tokens=True).strip() == record["text"].strip()
        assert record["finish_reason"] in ("eos", "length")
    assert "Paris" in records[0]["text"]
    base_prompt = tokenizer.decode(records[0]["prompt_token_ids"])
    pad_prompt = tokenizer.decode(records[1]["prompt_token_ids"])
    assert "[Principles]" not in base_prompt
    assert "[Principles] Generate a response that is concise and to the point without being verbose." in pad_prompt


def test_bench_times_every_row_and_reports_the_targets_from_them(capsys, tiny_model_dir):
    code, out, err = run(capsys, "bench", "--base", tiny_model_dir, "--device", "cpu", "--dtype", "fp32",
                         "--max-new-tokens", "3", "--batch-sizes", "1,2", "--repeat", "1", "--released-tokens", "4",
                         "--lora-rank", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["setup"]["persrm"] == "untrained PersRM"  # a base with no shipped PersRM
    loops = [(r["loop"], r["batch"], r["new_tokens"]) for r in report["rows"]]
    for batch in (1, 2):
        for loop in ("plain model.generate", "PAD engine, untrained PersRM", "PAD engine, head-only, released",
                     "PAD engine, head-only, decoupled", "PAD engine, LoRA r=2 PersRM"):
            assert (loop, batch, 3) in loops
    assert ("released PAD loop (no cache)", 1, 4) in loops and ("PAD engine, head-only, released", 1, 4) in loops
    rows = {(r["loop"], r["batch"], r["new_tokens"]): r for r in report["rows"]}
    targets = {t["what"]: t["value"] for t in report["targets"]}
    ratio = rows[("PAD engine, untrained PersRM", 2, 3)]["ms_per_step"] / rows[("plain model.generate", 2, 3)][
        "ms_per_step"]
    assert targets["untrained PersRM: PAD step latency / plain, batch 2"] == round(ratio, 2)
    assert len(targets) == 6
