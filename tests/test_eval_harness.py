"""`personalign eval` end to end on a tiny model: files, resume after a kill, config errors, metrics."""

import json
import math

import pytest
import torch

from personalign.cli import main
from personalign.decoding.engine import Engine
from personalign.errors import PersonalignError
from personalign.evaluation.config import EvalConfig
from personalign.evaluation.harness import GENERATIONS, JUDGMENTS, run_eval
from personalign.evaluation.metrics import diversity, perplexities
from personalign.evaluation.report import aggregate
from personalign.reward_model import PersonalizedRewardModel
from test_pad_engine import perturbed_head
from tiny import tiny_llama


class CountingEngine(Engine):
    def generate(self, requests, progress=None):
        self.requests = getattr(self, "requests", 0) + len(requests)
        return super().generate(requests, progress)


@pytest.fixture
def engine(smol_tokenizer):
    return CountingEngine(tiny_llama(0), smol_tokenizer, perturbed_head(PersonalizedRewardModel(tiny_llama(1))))


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"q{i}", "prompt": p}) for i, p in
                              enumerate(["How do plants grow?", "Tell me about the moon"])) + "\n")
    return str(path)


def config(prompts_file, out, **overrides):
    fields = dict(methods=["base", "prompt", "pad", "fusion", "args", "best-of-n"], preferences=["concise", "friendly"],
                  prompts=prompts_file, max_new_tokens=5, beta=[0.5, 2.0], best_of_n=2, batch_size=4, out=str(out))
    fields.update(overrides)
    return EvalConfig.from_dict(fields)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_full_run_writes_every_file(engine, prompts_file, tmp_path):
    out = run_eval(config(prompts_file, tmp_path / "run"), engine, progress=False)
    answers = lines(out / GENERATIONS)
    # base: 2 prompts; prompt and best-of-n: 2 prefs x 2 prompts; pad, fusion, args: x 2 betas
    assert len(answers) == 2 + 2 * 4 + 3 * 8
    assert {a["method"] for a in answers} == {"base", "prompt", "pad", "fusion", "args", "best-of-n"}
    assert all(a["candidates"] == 2 for a in answers if a["method"] == "best-of-n")
    judgments = lines(out / JUDGMENTS)
    kinds = {(j["kind"], j["dimension"]) for j in judgments}
    assert {("score", "concise"), ("score", "friendly"), ("win", "concise"), ("perplexity", "")} <= kinds
    assert sorted(j["key"] for j in judgments if j["kind"] == "on_question") == sorted(a["key"] for a in answers)
    base_scores = [j for j in judgments if j["key"].startswith("base|") and j["kind"] == "score"]
    assert len(base_scores) == 2 * 2  # the base's answers are judged on every preference's dimension
    results = (out / "results.csv").read_text()
    assert "win_rate" in results and "perplexity" in results and "tokens_per_second" in results
    table = (out / "results.md").read_text()
    assert "pad (β=0.5)" in table and "| best-of-n |" in table and "on question" in table
    assert (out / "scores.png").stat().st_size > 0 and (out / "beta.png").stat().st_size > 0


def test_resume_skips_finished_work_and_redoes_a_torn_line(engine, prompts_file, tmp_path):
    cfg = config(prompts_file, tmp_path / "run", methods=["base", "prompt", "pad"], beta=[1.0])
    out = run_eval(cfg, engine, progress=False)
    first = lines(out / GENERATIONS)
    engine.requests = 0
    run_eval(cfg, engine, progress=False)
    assert engine.requests == 0 and lines(out / GENERATIONS) == first
    # a run killed mid-write: three answers saved, the fourth torn
    text = (out / GENERATIONS).read_text().splitlines(keepends=True)
    (out / GENERATIONS).write_text("".join(text[:3]) + text[3][:20])
    (out / JUDGMENTS).write_text("")
    run_eval(cfg, engine, progress=False)
    again = lines(out / GENERATIONS)
    assert engine.requests == len(first) - 3
    assert sorted(a["key"] for a in again) == sorted(a["key"] for a in first)
    assert {a["key"]: a["text"] for a in again} == {a["key"]: a["text"] for a in first}  # greedy: same answers


@pytest.mark.parametrize("overrides, message", [
    (dict(methods=["base", "nope"]), "methods: unknown method 'nope'"),
    (dict(beta=[float("nan")]), "beta must be a finite number"),
    (dict(limit=0), "limit must be >= 1"),
    (dict(shoes=1), "unknown field 'shoes'"),
    (dict(max_new_tokens="many"), "field 'max_new_tokens'"),
])
def test_bad_config_names_the_field(prompts_file, tmp_path, overrides, message):
    with pytest.raises(PersonalignError, match=message):
        config(prompts_file, tmp_path, **overrides)


def test_a_judge_that_cannot_judge_the_preferences_is_refused(engine, prompts_file, tmp_path):
    cfg = config(prompts_file, tmp_path, methods=["base"], preferences=["humor"])
    with pytest.raises(PersonalignError, match="judges: offline cannot judge"):
        run_eval(cfg, engine, progress=False)
    cfg = config(prompts_file, tmp_path, methods=["args"], preferences=["I like cats"])
    with pytest.raises(PersonalignError, match="free-text preference"):
        run_eval(EvalConfig.from_dict({**cfg.__dict__, "judges": ["offline"], "preferences": ["concise", "I like cats"]}),
                 engine, progress=False)


def test_free_text_preferences_are_judged_by_relevance_beside_catalog_ones(engine, prompts_file, tmp_path,
                                                                          monkeypatch):
    from personalign.evaluation.judges import trained
    monkeypatch.setattr(trained, "_shared_minilm", trained.HashingEmbedder)  # MiniLM's verdicts are not the point
    free = "I keep bees and love talking about them"
    cfg = config(prompts_file, tmp_path / "run", methods=["base", "prompt", "meta-prompting"], beta=[1.0],
                 preferences=["concise", free], judges=["offline", "relevance"], baseline="prompt")
    out = run_eval(cfg, engine, progress=False)
    judged = {(j["judge"], j["dimension"], j["kind"]) for j in lines(out / JUDGMENTS)}
    assert {("relevance", free, "score"), ("relevance", free, "win"), ("offline", "concise", "win")} <= judged
    assert not {(judge, dim) for judge, dim, _ in judged} & {("relevance", "concise"), ("offline", free)}
    wins = [j for j in lines(out / JUDGMENTS) if j["judge"] == "relevance" and j["kind"] == "win"]
    assert len(wins) == 2 and all(j["key"].startswith("meta-prompting|") for j in wins)  # 2 prompts, vs prompt
    table = (out / "results.md").read_text()
    assert "Win rate against `prompt` (relevance" in table and free in table


def test_yaml_config_and_cli_errors(tmp_path, capsys, prompts_file):
    good = tmp_path / "eval.yaml"
    good.write_text(f"methods: [base, pad]\npreferences: concise\nbeta: [0.5, 1]\nprompts: {prompts_file}\n")
    cfg = EvalConfig.from_yaml(str(good))
    assert cfg.methods == ["base", "pad"] and cfg.preferences == ["concise"] and cfg.beta == [0.5, 1.0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [base\n")
    assert main(["eval", "--config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["eval", "--methods", "base,nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["eval", "--prompts", str(tmp_path / "missing.jsonl"), "--methods", "base"]) == 2


def test_diversity_counts_repeated_ngrams():
    assert diversity("a b c d e") == 1.0
    # "a b a b a b": bigrams ab,ba,ab,ba,ab -> 2/5; trigrams aba,bab,aba,bab -> 2/4; 4-grams abab,baba,abab -> 2/3
    assert diversity("a b a b a b") == pytest.approx(2 / 5 * 2 / 4 * 2 / 3)
    assert diversity("") == 1.0


@torch.no_grad()
def test_perplexity_equals_a_direct_computation():
    model = tiny_llama(0)
    prompts, answers = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]]
    got = perplexities(model, prompts, answers, pad_id=2)
    for p, a, value in zip(prompts, answers, got):
        logits = model(torch.tensor([p + a])).logits[0].log_softmax(-1)
        nll = -sum(float(logits[len(p) - 1 + i, t]) for i, t in enumerate(a)) / len(a)
        assert value == pytest.approx(math.exp(nll), rel=1e-4)


def lora_adapter(path, seed):
    from peft import LoraConfig, get_peft_model
    base = tiny_llama(0)
    torch.manual_seed(seed)  # after tiny_llama, which seeds its own init
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(50)  # large enough to change greedy choices of the tiny model
    model.save_pretrained(path)
    return model


def test_soups_average_adapter_parameters(smol_tokenizer, tmp_path):
    from peft import get_peft_model_state_dict
    from personalign.decoding.request import GenerationRequest
    from personalign.evaluation.soups import SOUP, SoupKitchen
    from personalign.preferences import Preference
    a, b = lora_adapter(tmp_path / "a", 1), lora_adapter(tmp_path / "b", 2)
    base = tiny_llama(0)
    kitchen = SoupKitchen(base, smol_tokenizer, {"concise": str(tmp_path / "a"), "friendly": str(tmp_path / "b")})
    engine = kitchen.engine_for(Preference.from_dims("concise=0.25,friendly=0.75"))
    soup = get_peft_model_state_dict(kitchen.model, adapter_name=SOUP)
    sa, sb = get_peft_model_state_dict(a), get_peft_model_state_dict(b)
    for key, value in soup.items():
        assert torch.allclose(value, 0.25 * sa[key] + 0.75 * sb[key])
    request = GenerationRequest("How do plants grow?", method="base", max_new_tokens=8)
    [mixed] = engine.generate([request])
    [only_a] = kitchen.engine_for(Preference.parse("concise")).generate([request])
    ids = torch.tensor([only_a.prompt_token_ids])
    expected = a.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                          pad_token_id=2)[0, ids.shape[1]:].tolist()
    assert only_a.token_ids == expected
    assert mixed.token_ids != only_a.token_ids
    [plain] = Engine(base, smol_tokenizer).generate([request])  # the soup never touched the base's weights
    assert plain.token_ids == Engine(tiny_llama(0), smol_tokenizer).generate([request])[0].token_ids
    with pytest.raises(PersonalignError, match="no adapter for 'expert'"):
        kitchen.check(Preference.parse("expert"))


def test_soups_through_the_harness(engine, prompts_file, tmp_path):
    lora_adapter(tmp_path / "a", 1), lora_adapter(tmp_path / "b", 2)
    cfg = config(prompts_file, tmp_path / "run", methods=["soups"], beta=[1.0],
                 soups={"concise": str(tmp_path / "a"), "friendly": str(tmp_path / "b")})
    out = run_eval(cfg, engine, progress=False)
    answers = [a for a in lines(out / GENERATIONS) if a["method"] == "soups"]
    assert len(answers) == 4
    by_pref = {a["preference"]: a["text"] for a in answers if a["prompt_id"] == "q0"}
    assert by_pref["concise"] != by_pref["friendly"]  # each preference decoded with its own soup
    with pytest.raises(PersonalignError, match="soups: the soups method needs"):
        config(prompts_file, tmp_path, methods=["soups"])


def test_args_uses_the_kv_cached_path_for_a_decoder_reward_model(engine, prompts_file, tmp_path, smol_tokenizer):
    from personalign.decoding.sequence_rm import CachedSequenceReward
    from test_rules_fusion_args import tiny_reward_model
    path = tmp_path / "rm"
    tiny_reward_model().save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    cfg = config(prompts_file, tmp_path / "run", methods=["args"], beta=[1.0], preferences=["concise"],
                 judges=[f"hf:{path}@concise"], reward_judge=f"hf:{path}@concise")
    out = run_eval(cfg, engine, progress=False)
    assert isinstance(engine.sequence_reward, CachedSequenceReward)
    assert len([a for a in lines(out / GENERATIONS) if a["method"] == "args"]) == 2


def test_the_report_counts_answers_that_echo_the_template_or_loop():
    texts = ["[Guidelines] Your task is to be brief.", "Paris.", " ".join(["I'm not sure,"] * 8), "Paris, France."]
    answers = [dict(key=f"pad|{i}", method="pad", beta=1.0, preference="concise", prompt_id=str(i), text=text,
                    token_ids=[1, 2], seconds=0.1) for i, text in enumerate(texts)]
    rows = aggregate(None, answers, [])
    for metric in ("template_echo", "loops"):
        found = [(r["method"], r["preference"], r["value"], r["n"]) for r in rows if r["metric"] == metric]
        assert found == [("pad", "concise", 0.25, 4)]
    assert not [r for r in rows if r["metric"] == "same_answer"]  # one preference: nothing to compare with


def test_the_report_shows_loops_and_echoes_per_preference_where_an_average_would_hide_them():
    from personalign.evaluation.report import markdown
    loop = " ".join(["I'm not sure,"] * 8)
    texts = {"concise": ["Paris.", "Rome."], "expert": [loop, loop], "friendly": ["[Guidelines] Be kind.", "Hi!"]}
    answers = [dict(key=f"pad|{p}|{i}", method="pad", beta=1.0, preference=p, prompt_id=str(i), text=t,
                    token_ids=[1], seconds=0.1) for p, ts in texts.items() for i, t in enumerate(ts)]
    cfg = EvalConfig.from_dict(dict(methods=["pad"], preferences=list(texts), beta=[1.0], baseline="pad"))
    table = markdown(cfg, aggregate(cfg, answers, []))
    assert "| pad (β=1) | 0 / 0 | 1 / 0 | 0 / 0.5 |" in table


def test_the_report_counts_answers_a_method_gives_under_another_preference_too():
    """A method that ignores the preference answers alike under each; one that reads it does not."""
    texts = {("metaalign", "concise", "0"): "Paris.", ("metaalign", "expert", "0"): " Paris. ",
             ("metaalign", "concise", "1"): "Rome.", ("metaalign", "expert", "1"): "Rome, on the Tiber.",
             ("prompt", "concise", "0"): "Paris.", ("prompt", "expert", "0"): "The capital is Paris."}
    answers = [dict(key="|".join(k), method=k[0], beta=0.0, preference=k[1], prompt_id=k[2], text=t, token_ids=[1],
                    seconds=0.1) for k, t in texts.items()]
    rows = aggregate(None, answers, [])
    same = {(r["method"], r["preference"]): (r["value"], r["n"]) for r in rows if r["metric"] == "same_answer"}
    assert same == {("metaalign", "concise"): (0.5, 2), ("metaalign", "expert"): (0.5, 2),
                    ("prompt", "concise"): (0.0, 1), ("prompt", "expert"): (0.0, 1)}


def test_failed_answers_lose_in_the_second_win_rate(prompts_file, tmp_path):
    """Win rate with failures losing: a clean answer beats an echo or a loop whatever the judge said; between two
    clean answers or two failures the judge's verdict stands."""
    from personalign.evaluation.plan import baseline_key
    cfg = config(prompts_file, tmp_path, methods=["prompt", "pad"], beta=[1.0], baseline="prompt")
    echo, loop = "[Guidelines] Your task is to be brief.", " ".join(["I'm not sure,"] * 8)
    # (PAD's answer, prompting's answer, the judge's verdict for PAD)
    cases = [("Paris.", echo, 0.0), (loop, "Paris.", 0.0), ("Paris.", "It is Paris.", 0.5), (echo, loop, 0.0)]
    answers, judgments = [], []
    for i, (mine, theirs, verdict) in enumerate(cases):
        pad = dict(key=f"pad|{i}", method="pad", beta=1.0, preference="concise", prompt_id=str(i), prompt="Capital?",
                   text=mine, token_ids=[1], seconds=0.1)
        answers += [pad, dict(pad, key=baseline_key(pad, cfg), method="prompt", beta=0.0, text=theirs)]
        judgments.append(dict(key=pad["key"], judge="offline", dimension="concise", kind="win", value=verdict))
    rows = {r["metric"]: r["value"] for r in aggregate(cfg, answers, judgments) if r["method"] == "pad"
            and r["judge"] == "offline"}
    assert rows["win_rate"] == 0.5 / 4 and rows["win_rate_failures_lose"] == 1.5 / 4
    assert rows["win_rate_neither_failed"] == 0.5  # the one pair of clean answers


def test_answers_that_leave_the_question_score_lower_on_question(engine, tmp_path):
    """The real MiniLM: an answer about the moon stays on "Tell me about the moon"; one about a preference's own
    words (what a gamed judge rewards) does not, and the report's on-question column shows it."""
    from personalign.evaluation.harness import judge_answers
    from personalign.evaluation.report import markdown
    prompt = "Tell me about the moon"
    texts = {"prompt": "The moon orbits the Earth every 27 days and its phases come from sunlight on its surface.",
             "pad": "Being concise matters: short answers, brief words, no extra detail, keep it short."}
    answers = {f"{m}|q0": dict(key=f"{m}|q0", method=m, beta=0.0, preference="concise", prompt_id="q0", prompt=prompt,
                               text=t, token_ids=[1], seconds=0.1, settings={}) for m, t in texts.items()}
    cfg = EvalConfig.from_dict(dict(methods=["pad"], preferences=["concise"], beta=[0.0],
                                    baseline="prompt", out=str(tmp_path)))
    records = list(answers.values())
    judge_answers(engine, [], records, answers, cfg, tmp_path / JUDGMENTS, progress=False)
    cosine = {j["key"]: j["value"] for j in lines(tmp_path / JUDGMENTS) if j["kind"] == "on_question"}
    assert cosine["prompt|q0"] > cosine["pad|q0"] + 0.2
    rows = aggregate(cfg, records, lines(tmp_path / JUDGMENTS))
    on_question = {r["method"]: r["value"] for r in rows if r["metric"] == "on_question"}
    assert on_question == pytest.approx({"prompt": cosine["prompt|q0"], "pad": cosine["pad|q0"]})
    assert f"| {cosine['pad|q0']:.3g} |" in markdown(cfg, rows)
