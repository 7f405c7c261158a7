"""--method metaalign and metaalign-pad in the one loop: the base row runs through the MetaAlign policy's adapter
(beside the PersRM's, per row, in one forward), checked against plain `generate` of the base with the adapter."""

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from personalign import Engine, GenerationRequest, load_policy, meta_prompt_inputs, pad_logits_processor
from personalign.errors import PersonalignError
from personalign.meta_prompt import MetaPrompt, render_meta_ids
from personalign.metaalign_policy import POLICY_FORMAT, attach_policy, check_policy_dir
from personalign.reward_model import PersonalizedRewardModel
from test_logits_processor import perturbed_head, perturbed_lora, until_eos
from tiny import tiny_llama

PROMPTS = ["How do plants grow?", "Tell me about the moon, please, in a few words."]
USER = "I teach literature at a university."
N = 8


def saved_policy(directory, scale=0.5, seed=3, base="tiny"):
    """A policy directory as train-policy writes it, over tiny_llama(0) (saved as `base`); scale 0 is an untrained
    adapter."""
    peft = get_peft_model(tiny_llama(0), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj",
                                                                                        "v_proj", "o_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.add_(scale * torch.randn(param.shape, generator=generator))
    peft.save_pretrained(directory / "adapter")
    (directory / "policy.json").write_text(json.dumps({"format": POLICY_FORMAT, "version": 1, "recipe": "sft",
                                                         "base": base}))
    return directory


def engine_with(tokenizer, policy_dir=None, persrm="lora"):
    model = tiny_llama(0)
    reward = PersonalizedRewardModel(model)
    if persrm == "lora":
        reward = perturbed_lora(perturbed_head(reward))
    carrier = attach_policy(model, reward, policy_dir) if policy_dir else None
    return Engine(model, tokenizer, reward, policy=carrier, policy_source=str(policy_dir) if policy_dir else None)


def request(prompt, method, **kwargs):
    return GenerationRequest(prompt, USER, method=method, max_new_tokens=N, **kwargs)


@pytest.mark.parametrize("persrm", ["lora", "head"])
def test_metaalign_is_plain_generate_of_the_base_with_the_policy_adapter(tmp_path, smol_tokenizer, persrm):
    policy = saved_policy(tmp_path)
    results = engine_with(smol_tokenizer, policy, persrm).generate([request(p, "metaalign") for p in PROMPTS])
    oracle = PeftModel.from_pretrained(tiny_llama(0), str(policy / "adapter")).eval()
    for prompt, result in zip(PROMPTS, results):
        ids = render_meta_ids(smol_tokenizer, prompt, MetaPrompt(user_info=USER))
        out = oracle.generate(input_ids=torch.tensor([ids]), do_sample=False, max_new_tokens=N, pad_token_id=2)
        assert result.prompt_token_ids == ids
        assert result.token_ids == out[0, len(ids):].tolist()[:len(result.token_ids)]


def test_an_untrained_policy_is_meta_prompting(tmp_path, smol_tokenizer):
    engine = engine_with(smol_tokenizer, saved_policy(tmp_path, scale=0.0))
    aligned = engine.generate([request(p, "metaalign") for p in PROMPTS])
    prompted = engine.generate([request(p, "meta-prompting") for p in PROMPTS])
    assert [r.token_ids for r in aligned] == [r.token_ids for r in prompted]


def test_a_mixed_batch_equals_each_request_alone(tmp_path, smol_tokenizer):
    engine = engine_with(smol_tokenizer, saved_policy(tmp_path))
    mixed = [request(PROMPTS[0], "metaalign"), request(PROMPTS[1], "pad", beta=1.5), request(PROMPTS[0], "prompt"),
             request(PROMPTS[1], "metaalign-pad", beta=1.0), request(PROMPTS[1], "meta-prompting"),
             request(PROMPTS[0], "metaalign-cfg", beta=2.0)]
    together = engine.generate(mixed)
    alone = [engine.generate([r])[0] for r in mixed]
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    assert together[0].token_ids != engine.generate([request(PROMPTS[0], "meta-prompting")])[0].token_ids, \
        "the policy's adapter changed nothing: the test proves nothing"


def test_metaalign_pad_at_beta_zero_is_metaalign(tmp_path, smol_tokenizer):
    engine = engine_with(smol_tokenizer, saved_policy(tmp_path))
    guided = engine.generate([request(p, "metaalign-pad", beta=0.0) for p in PROMPTS])
    assert [r.token_ids for r in guided] == [r.token_ids for r in engine.generate([request(p, "metaalign")
                                                                                     for p in PROMPTS])]


def test_metaalign_cfg_amplifies_what_user_info_adds_over_system_info_alone(tmp_path, smol_tokenizer):
    """score = z_policy + beta * (l_policy - l_policy reading System Info alone) over the policy's top-k: a
    hand-written loop over the policy itself gives the engine's tokens, the PersRM playing no part."""
    policy = saved_policy(tmp_path)
    beta, k = 3.0, 10
    engine = engine_with(smol_tokenizer, policy)
    results = engine.generate([request(p, "metaalign-cfg", beta=beta, top_k=k, end_of_turn="reward")
                               for p in PROMPTS])
    oracle = PeftModel.from_pretrained(tiny_llama(0), str(policy / "adapter")).eval()
    for prompt, result in zip(PROMPTS, results):
        told = render_meta_ids(smol_tokenizer, prompt, MetaPrompt(user_info=USER))
        alone = render_meta_ids(smol_tokenizer, prompt, MetaPrompt())
        tokens = []
        with torch.no_grad():
            for _ in result.token_ids:
                z = oracle(input_ids=torch.tensor([told + tokens])).logits[0, -1]
                z_alone = oracle(input_ids=torch.tensor([alone + tokens])).logits[0, -1]
                top, cand = z.topk(k)
                tokens.append(int(cand[(top + beta * (top.log_softmax(-1) - z_alone[cand].log_softmax(-1))).argmax()]))
        assert result.token_ids == tokens
    plain = engine.generate([request(p, "metaalign") for p in PROMPTS])
    assert [r.token_ids for r in results] != [r.token_ids for r in plain], "guidance changed nothing"
    at_zero = engine.generate([request(p, "metaalign-cfg", beta=0.0) for p in PROMPTS])
    assert [r.token_ids for r in at_zero] == [r.token_ids for r in plain]
    with pytest.raises(PersonalignError, match="takes only the decoupled reward form, not 'released'"):
        request(PROMPTS[0], "metaalign-cfg", reward="released")


def test_metaalign_cfg_needs_the_persrm_on_the_policys_base(tmp_path, smol_tokenizer):
    model = tiny_llama(0)
    elsewhere = PersonalizedRewardModel(tiny_llama(0))  # its own copy of the weights: rows in another runner
    engine = Engine(model, smol_tokenizer, elsewhere, policy=attach_policy(model, None, saved_policy(tmp_path)))
    with pytest.raises(PersonalignError, match="must ride on the policy's base model"):
        engine.submit(request(PROMPTS[0], "metaalign-cfg"))


def test_without_a_policy_metaalign_is_refused_and_bad_directories_are_named(tmp_path, smol_tokenizer):
    with pytest.raises(PersonalignError, match="needs a trained MetaAlign policy .* --method meta-prompting"):
        engine_with(smol_tokenizer).submit(request(PROMPTS[0], "metaalign"))
    run = tmp_path / "run"
    saved_policy((run / "policy").mkdir(parents=True) or run / "policy")
    with pytest.raises(PersonalignError, match="has no policy.json: did you mean .*run/policy"):
        check_policy_dir(run)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "policy.json").write_text('{"format": "something-else"}')
    with pytest.raises(PersonalignError, match="is not a personalign MetaAlign policy"):
        check_policy_dir(tmp_path / "other")
    with pytest.raises(PersonalignError, match="directory not found"):
        check_policy_dir(tmp_path / "missing")


@pytest.mark.parametrize("policy", [False, True])
def test_the_base_itself_is_reachable_under_injected_adapters(tmp_path, smol_tokenizer, policy):
    """A LoRA PersRM sharing the base (and a policy) inject their adapters into the base's own layers: perplexity
    under the base and soups need the base alone (bare_model, bare_copy)."""
    engine = engine_with(smol_tokenizer, saved_policy(tmp_path) if policy else None)
    ids = torch.tensor([render_meta_ids(smol_tokenizer, PROMPTS[0], MetaPrompt(user_info=USER))])
    clean = tiny_llama(0)(input_ids=ids).logits
    assert not torch.allclose(engine.model(input_ids=ids).logits, clean)  # the adapters are really in the way
    with engine.bare_model():
        assert torch.allclose(engine.model(input_ids=ids).logits, clean)
    copy = engine.bare_copy()
    assert not any("lora" in name for name, _ in copy.named_modules())
    assert torch.allclose(copy(input_ids=ids).logits, clean)
    assert not torch.allclose(engine.model(input_ids=ids).logits, clean)  # the engine's own adapters stay


def test_the_command_line_loads_a_policy_or_says_why_not(tmp_path, capsys, tiny_model_dir):
    from personalign.cli import main

    common = ["generate", "Hi", "--method", "metaalign", "--user-info", USER, "--base", tiny_model_dir,
              "--persrm", "untrained", "--max-new-tokens", "3", "--json"]
    assert main(common) == 2
    assert "needs a trained MetaAlign policy" in capsys.readouterr().err
    assert main([*common, "--policy", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a MetaAlign policy: it has no policy.json" in err
    (tmp_path / "p").mkdir()
    assert main([*common, "--policy", str(saved_policy(tmp_path / "p", seed=5))]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["method"] == "metaalign" and record["token_ids"]


def test_eval_refuses_metaalign_without_a_policy_before_writing(tmp_path, smol_tokenizer, capsys):
    from personalign.cli import main
    from personalign.evaluation.config import EvalConfig
    from personalign.evaluation.harness import run_eval

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "q0", "prompt": PROMPTS[0]}) + "\n")
    config = EvalConfig.from_dict(dict(methods=["metaalign"], baseline="prompt", preferences=["concise"],
                                       prompts=str(prompts), max_new_tokens=2, out=str(tmp_path / "run")))
    with pytest.raises(PersonalignError, match="metaalign needs a trained MetaAlign policy"):
        run_eval(config, engine_with(smol_tokenizer), progress=False)
    assert main(["eval", "--methods", "metaalign-pad", "--prompts", str(prompts), "--out", str(tmp_path / "run"),
                 "--policy", "untrained"]) == 2
    assert "needs a trained MetaAlign policy" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_logits_processor_path_gives_the_engines_metaalign_and_metaalign_pad(tmp_path, smol_tokenizer,
                                                                                  tiny_model_dir):
    """load_policy + meta_prompt_inputs is --method metaalign in your own generate; with pad_logits_processor and
    prepare(method="metaalign-pad") the PersRM reads PAD's template on the bare base while the policy generates."""
    policy = saved_policy(tmp_path, base=tiny_model_dir)
    model, tokenizer = load_policy(str(policy), dtype=torch.float32)
    engine = engine_with(smol_tokenizer, policy, persrm="head")  # the untrained PersRM over the bare base

    def ours(inputs, processors=()):
        out = model.generate(**inputs, logits_processor=list(processors), do_sample=False, max_new_tokens=N,
                             pad_token_id=2)
        return [until_eos(row) for row in out[:, inputs["input_ids"].shape[1]:].tolist()]

    engines = lambda method: [r.token_ids for r in engine.generate(
        [request(p, method, reward="released") for p in PROMPTS])]
    assert ours(meta_prompt_inputs(tokenizer, PROMPTS, USER)) == engines("metaalign")
    processor = pad_logits_processor(model, "untrained")
    assert not any("lora" in name for name, _ in processor.persrm.backbone.named_modules())
    guided = ours(processor.prepare(tokenizer, PROMPTS, USER, method="metaalign-pad"), [processor])
    assert guided == engines("metaalign-pad")
    assert guided != engines("metaalign"), "the PersRM changed nothing: the test proves nothing"
    with pytest.raises(PersonalignError, match="renders the pad and metaalign-pad methods"):
        processor.prepare(tokenizer, PROMPTS, USER, method="metaalign")


# ---- the policy shipped for the embedded model ------------------------------------------------------------------

def test_the_shipped_policy_is_the_default_for_the_embedded_model_only():
    from personalign.api import DEFAULT_POLICY, default_policy
    from personalign.models import resolve_model_source

    assert check_policy_dir(DEFAULT_POLICY) == DEFAULT_POLICY
    size = sum(f.stat().st_size for f in DEFAULT_POLICY.rglob("*") if f.is_file())
    assert size < 20 * 2**20
    assert default_policy(resolve_model_source(None)) == str(DEFAULT_POLICY)
    assert default_policy("/somewhere/else") is None


def test_metaalign_on_the_embedded_model_needs_no_policy_flag(capsys):
    from personalign.cli import main

    assert main(["generate", "How do vaccines work?", "--method", "metaalign", "-p", "concise", "--max-new-tokens",
                 "4", "--json"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["method"] == "metaalign" and record["token_ids"]


def test_the_readme_metaalign_snippet_runs(capsys):
    import ast
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    [snippet] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "meta_prompt_inputs" in b]
    exec(snippet.replace("max_new_tokens=64", "max_new_tokens=4"), {})
    [answer] = ast.literal_eval(capsys.readouterr().out)
    assert answer
