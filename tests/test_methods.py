"""The method registry (decoding/methods.py) is the one place a method is declared: the request, the command line
and the evaluation read it, and the engine decodes a method declared here without any edit of its own."""

from dataclasses import replace

import pytest

from personalign.cli import build_parser
from personalign.decoding import methods
from personalign.decoding.engine import Engine
from personalign.decoding.request import GenerationRequest
from personalign.errors import PersonalignError
from personalign.evaluation.config import METHODS as EVAL_METHOD_NAMES, EvalConfig
from personalign.evaluation.plan import EVAL_METHODS, GUIDED
from personalign.preferences import Preference
from personalign.prompts import pad_prompt, render_ids
from personalign.reward_model import PersonalizedRewardModel
from test_pad_engine import PROMPTS, full_logits, perturbed_head, persrm_logits
from test_rules_fusion_args import fusion_oracle
from tiny import tiny_llama


def _method_choices() -> list[str]:
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    return next(a for a in generate._actions if a.dest == "method").choices


def test_every_surface_lists_the_registrys_methods():
    names = methods.names()
    assert list(_method_choices()) == list(names)
    for name in names:
        preference = Preference.none() if not methods.get(name).needs_preference else Preference.parse("concise")
        assert GenerationRequest("Hi", preference, method=name).method == name
    # evaluation: every engine method as itself, then the configurations of engine methods
    assert EVAL_METHOD_NAMES[:len(names)] == names and set(EVAL_METHOD_NAMES) == set(EVAL_METHODS)
    assert all(EVAL_METHODS[n].engine == n for n in names)
    assert all(e.engine in names for e in EVAL_METHODS.values())
    assert set(GUIDED) == {n for n, e in EVAL_METHODS.items() if methods.get(e.engine).guided}


def test_an_unknown_method_is_refused_with_the_registrys_names():
    with pytest.raises(PersonalignError) as error:
        GenerationRequest("Hi", "concise", method="nosuch")
    assert all(name in str(error.value) for name in methods.names())
    with pytest.raises(PersonalignError) as error:
        EvalConfig(methods=["nosuch"]).validate()
    assert all(name in str(error.value) for name in EVAL_METHOD_NAMES)


def test_a_declaration_that_contradicts_itself_is_refused():
    with pytest.raises(PersonalignError, match="guided"):
        replace(methods.get("pad"), name="toy", guided=False)
    with pytest.raises(PersonalignError, match="guide_rows"):
        replace(methods.get("fusion"), name="toy", guide_rows=None)
    with pytest.raises(PersonalignError, match="already registered"):
        methods.register(methods.get("pad"))


def test_a_request_without_beta_takes_its_methods_own_and_an_eval_run_each_methods(monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, "toy-pad", replace(methods.get("pad"), name="toy-pad", default_beta=0.25))
    assert GenerationRequest("Hi", "concise", method="toy-pad").beta == 0.25
    assert GenerationRequest("Hi", "concise", method="pad").beta == 1.0
    assert GenerationRequest("Hi", "concise", method="toy-pad", beta=0).beta == 0  # a given beta, 0 too, stays
    assert GenerationRequest("Hi", "concise", method="metaalign-cfg").beta == methods.get("metaalign-cfg").default_beta
    toy = replace(EVAL_METHODS["pad"], name="toy-pad", engine="toy-pad")
    assert toy.betas(EvalConfig()) == [0.25] and EVAL_METHODS["pad"].betas(EvalConfig()) == [1.0]
    assert toy.betas(EvalConfig(beta=[0.5, 2])) == [0.5, 2.0]  # a sweep names every guided method's betas
    assert EVAL_METHODS["prompt"].betas(EvalConfig(beta=[0.5])) == [0.0]


@pytest.fixture
def toy_methods(monkeypatch):
    """Two methods the engine has never heard of, declared only in the registry."""
    fusion, base = methods.get("fusion"), methods.get("base")
    # logit fusion whose base row also reads the preference in PAD's template
    monkeypatch.setitem(methods.REGISTRY, "toy-fusion", replace(fusion, name="toy-fusion", base_row=pad_prompt))
    # plain decoding of the templated prompt: preference prompting under another name
    monkeypatch.setitem(methods.REGISTRY, "toy-prompt", replace(base, name="toy-prompt", base_row=pad_prompt,
                                                                needs_preference=True))


def test_the_engine_decodes_a_method_declared_only_in_the_registry(toy_methods, smol_tokenizer):
    base = tiny_llama(0)
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    engine = Engine(base, smol_tokenizer, persrm)
    pref = Preference.parse("Answer like a pirate")
    fused = engine.generate([GenerationRequest(p, pref, method="toy-fusion", beta=0.5, max_new_tokens=10)
                             for p in PROMPTS])
    for prompt, result in zip(PROMPTS, fused):
        ids = render_ids(smol_tokenizer, prompt, pref.text)  # base and guide read the same templated prompt
        assert result.token_ids == fusion_oracle(full_logits(base), persrm_logits(persrm), ids, [ids], [1.0], 0.5,
                                                 10, 10)
        assert result.method == "toy-fusion"
    plain = [GenerationRequest(PROMPTS[0], pref, method=m, max_new_tokens=10) for m in ("toy-prompt", "prompt")]
    toy, prompting = engine.generate(plain)
    assert toy.token_ids == prompting.token_ids
    assert engine.generate([GenerationRequest(PROMPTS[0], pref, method="fusion", beta=0.5, max_new_tokens=10)])[0] \
        .token_ids != fused[0].token_ids, "the toy's base row changed nothing: the test proves nothing"
