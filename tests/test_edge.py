"""Issue 12's inputs that used to hurt, each now one line and exit code 2 (or a warning, or an answer), on a tiny
base model saved to disk; plus first use, --version and the help of every option."""

import argparse
import json

import pytest

from personalign.cli import build_parser, main
from test_fuzz import time_bound


@pytest.fixture
def run(capsys, tiny_model_dir, reuse_loaded_models):
    def run(*argv, base=True):
        extra = ["--base", tiny_model_dir, "--persrm", "untrained"] if base and argv[0] == "generate" else []
        code = main([*argv, *extra])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def one_line_error(code, out, err, message):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("personalign: error: ") and message in err, err
    assert out == ""


def test_top_k_beyond_the_vocabulary(run):
    one_line_error(*run("generate", "Hi", "-p", "concise", "--top-k", "100000"),
                   "top_k 100000 is more than the model's vocabulary of 49152 tokens")


def test_an_input_file_that_is_not_utf8(run, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    one_line_error(*run("generate", "--input", str(path)), f"{path}: not UTF-8 text")


def test_a_persrm_directory_that_is_not_one_is_refused_before_loading(run, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, out, err = run("generate", "Hi", "-p", "concise", "--persrm", str(tmp_path), base=False)
    one_line_error(code, out, err, "is not a model directory")


def test_a_prompt_longer_than_the_context_is_refused_at_once(run, tmp_path):
    with time_bound():  # it used to decode a 40k-token prompt for minutes
        one_line_error(*run("generate", "word " * 40_000, "-p", "concise"), "more than the model's context of 512")
    one_line_error(*run("generate", "Hi", "--method", "meta-prompting", "--user-info", "word " * 1000),
                   "User Info included), more than the model's context of 512")
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"prompt": "word " * 80, "preference": "concise"}) + "\n")
    one_line_error(*run("generate", "--input", str(path), "--max-new-tokens", "500"),
                   "ask for at most")


@pytest.mark.parametrize("argv, message", [
    (["-p", "concice"], "unknown preference name 'concice': did you mean 'concise'?"),
    (["-p", "nosuchpref"], "unknown preference name 'nosuchpref'; catalog names: elementary"),
    (["-p", "concise,frendly"], "did you mean 'friendly'?"),
    (["--dims", "concise=0.5,frendly=0.5"], "unknown preference dimension 'frendly': did you mean 'friendly'?"),
    (["-p", "concise", "--beta", "-1"], "beta must be >= 0, got -1"),
])
def test_silently_accepted_inputs_are_refused(run, argv, message):
    one_line_error(*run("generate", "Hi", *argv, "--max-new-tokens", "2"), message)


def test_free_text_stays_free(run):
    for preference in ("brief", "I'm a nurse on night shifts", "concise, please", "簡潔に"):
        code, out, err = run("generate", "Hi", "-p", preference, "--max-new-tokens", "2")
        assert code == 0 and err == "", (preference, err)


def test_negative_beta_when_asked_for_and_a_warning_for_a_huge_one(run):
    code, _, err = run("generate", "Hi", "-p", "concise", "--beta", "-1", "--allow-negative-beta",
                       "--max-new-tokens", "2")
    assert code == 0 and err == ""
    code, _, err = run("generate", "Hi", "-p", "concise", "--beta", "1e9", "--max-new-tokens", "2")
    assert code == 0
    assert err.startswith("personalign: warning: beta 1e+09 is far above") and err.count("\n") == 1


def test_first_use_without_a_preference_answers_with_the_base_model_and_a_hint(run):
    code, out, err = run("generate", "Hi", "--max-new-tokens", "3", "--json")
    assert code == 0
    assert [json.loads(line)["method"] for line in out.splitlines()] == ["base"]
    assert err.startswith("personalign: hint: no preference given") and err.count("\n") == 1


def test_an_empty_prompt_is_named_before_a_missing_preference(run):
    one_line_error(*run("generate", ""), "the prompt is empty")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("personalign ")


def test_every_option_of_every_command_has_help():
    missing = []

    def walk(parser, path):
        if len(path) > 1 and not parser.description:
            missing.append(f"{' '.join(path)}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help:
                missing.append(f"{' '.join(path)} {action.option_strings or action.dest}")

    walk(build_parser(), ["personalign"])
    assert not missing
