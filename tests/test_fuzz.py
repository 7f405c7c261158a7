"""Fuzzing the entry points (hypothesis, derandomized so CI sees the same few hundred cases every run): whatever a
user types, the command line either succeeds or prints one line and exits 2, and the library either answers or
raises PersonalignError; never a traceback, never a hang past a time bound."""

import json
import math
import re
import signal
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalign import GenerationRequest, Preference, PersonalignError
from personalign.cli import main
from personalign.evaluation.config import EvalConfig
from personalign.training.config import TrainConfig

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SECONDS = 60  # per case, generous for a loaded machine: a hang is a failure, not a stuck CI

texts = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "Hi", "How do vaccines work?", "word " * 40_000,
                                                         "\x00", "é" * 3, "concise"]))
preferences = st.one_of(st.sampled_from(["concise", "concice", "nosuchpref", "expert", "P1A", "I love cats", "",
                                         "concise=0.7,friendly=0.3", "concise=x", "a=1,b=2", "简洁", "42"]),
                        st.text(max_size=20))
numbers = st.one_of(st.integers(-3, 200_000), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["ten", "", "1e9", "-0", "nan"]))


@contextmanager
def time_bound(seconds=SECONDS):
    def hang(*_):
        raise TimeoutError(f"no answer within {seconds} s")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def generate_argv(draw):
    argv = ["generate"]
    if draw(st.booleans()):
        argv.append(draw(texts))
    for flag, values in (("-p", preferences), ("--dims", preferences), ("--beta", numbers), ("--top-k", numbers),
                         ("--max-new-tokens", st.integers(-2, 700)), ("--temperature", numbers),
                         ("--top-p", numbers), ("--seed", numbers), ("--stop", texts),
                         ("--method", st.sampled_from(["pad", "prompt", "base", "fusion", "args", "nope"])),
                         ("--reward", st.sampled_from(["released", "decoupled", "x"])),
                         ("--end-of-turn", st.sampled_from(["reward", "base", "x"])),
                         ("--batch-size", st.integers(-1, 3))):
        if draw(st.integers(0, 3)) == 0:
            argv += [flag, str(draw(values))]
    for flag in ("--with-base", "--json", "--stream", "--allow-negative-beta"):
        if draw(st.integers(0, 4)) == 0:
            argv.append(flag)
    return argv


@pytest.fixture(scope="module")
def input_files(tmp_path_factory):
    """--input files a user might hand over: good, broken JSON, wrong types, not UTF-8, empty, a directory."""
    root = tmp_path_factory.mktemp("inputs")
    contents = {
        "good.jsonl": '{"prompt": "Hi", "preference": "concise"}\n{"prompt": "Yo", "max_new_tokens": 3}\n',
        "broken.jsonl": '{"prompt": "Hi"\n',
        "types.jsonl": '{"prompt": 5}\n{"prompt": "Hi", "beta": "big", "top_k": 1.5}\n["a list"]\n',
        "fields.jsonl": '{"prompt": "Hi", "nope": 1}\n{"prompt": [{"role": "user", "content": 3}]}\n',
        "empty.jsonl": "\n\n",
    }
    for name, text in contents.items():
        (root / name).write_text(text)
    (root / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    return [str(root / name) for name in [*contents, "latin1.jsonl"]] + [str(root), str(root / "missing.jsonl")]


def assert_clean_exit(argv, capsys):
    with time_bound():
        code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("personalign: error: "), (argv, err)
    else:
        assert code == 0, (argv, code, err)
        # besides answers, only warnings, hints and --input's progress ("[8/20]")
        assert all(re.fullmatch(r"personalign: (warning|hint): .*|\[\d+/\d+\]", line) for line in err.splitlines())


@FUZZ
@given(argv=generate_argv(), input_choice=st.integers(0, 20))
def test_generate_never_crashes(argv, input_choice, input_files, tiny_model_dir, reuse_loaded_models, capsys):
    if input_choice < len(input_files):
        argv = argv + ["--input", input_files[input_choice]]
    assert_clean_exit(argv + ["--base", tiny_model_dir, "--persrm", "untrained"], capsys)


@FUZZ
@given(argv=st.lists(st.sampled_from(["--methods", "--beta", "--preferences", "--limit", "--top-k", "--soups",
                                      "--max-new-tokens", "--best-of-n", "--temperature", "--baseline", "x", "",
                                      "pad,nope", "1,x", "-1", "0", "nan", "concise|concice", "a=b", "--judges",
                                      "--config", "/no/such.yaml"]), max_size=6))
def test_eval_flags_never_crash(argv, capsys, tmp_path_factory):
    # up to the point where a run would start: a valid configuration is checked, then run_eval is not reached
    out = tmp_path_factory.mktemp("eval")
    with time_bound():
        try:
            from personalign.commands.eval import config_from_args
            from personalign.cli import build_parser
            config_from_args(build_parser().parse_args(["eval", *argv, "--out", str(out)]))
        except PersonalignError as error:
            assert "\n" not in str(error)


@FUZZ
@given(prompt=st.one_of(texts, st.lists(st.dictionaries(st.sampled_from(["role", "content"]),
                                                        st.one_of(texts, st.integers())), max_size=3)),
       preference=st.one_of(preferences, st.none(), st.integers()),
       method=st.sampled_from(["pad", "prompt", "base", "fusion", "x"]),
       beta=numbers, top_k=numbers, max_new_tokens=st.one_of(st.integers(-1, 600), st.floats()),
       temperature=numbers, top_p=numbers, seed=numbers, stop=st.one_of(texts, st.lists(texts, max_size=2)))
def test_the_library_answers_or_raises_personalign_error(prompt, preference, method, beta, top_k, max_new_tokens,
                                                          temperature, top_p, seed, stop, tiny_engine):
    with time_bound():
        try:
            request = GenerationRequest(prompt, preference, method=method, beta=beta, top_k=top_k,
                                        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                        seed=seed, stop=stop)
        except PersonalignError as error:
            assert "\n" not in str(error)
            return
        try:
            [result] = tiny_engine.generate([request])
        except PersonalignError as error:
            assert "\n" not in str(error)
            return
        assert len(result.token_ids) <= request.max_new_tokens
        assert not tiny_engine.busy


@FUZZ
@given(value=st.one_of(preferences, st.dictionaries(st.text(max_size=8), st.floats(), max_size=3)))
def test_preferences_parse_or_refuse(value):
    try:
        preference = Preference.parse(value) if isinstance(value, str) else Preference.from_dims(value)
    except PersonalignError as error:
        assert "\n" not in str(error)
        return
    assert math.isclose(sum(preference.weights), 1.0)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["methods", "beta", "limit", "top_k", "soups", "max_new_tokens",
                                               "temperature", "baseline", "nope"]),
                              st.one_of(st.integers(-2, 5), st.floats(), st.text(max_size=5), st.none(),
                                        st.lists(st.text(max_size=5), max_size=2)), max_size=4),
       train=st.dictionaries(st.sampled_from(["beta", "stage1_steps", "batch_size", "valid_fraction",
                                              "head_dropout", "eval_limit", "reference"]),
                             st.one_of(st.integers(-2, 5), st.floats(), st.text(max_size=5)), max_size=3))
def test_configs_validate_or_refuse(fields, train):
    for build in (lambda: EvalConfig.from_dict(json.loads(json.dumps(fields, default=str))),
                  lambda: TrainConfig(train="t.jsonl", out="o", **train).validate()):
        try:
            build()
        except PersonalignError as error:
            assert "\n" not in str(error)


@pytest.fixture(scope="module")
def tiny_engine(smol_tokenizer):
    from personalign import Engine
    from tiny import tiny_llama

    return Engine(tiny_llama(0), smol_tokenizer)
