"""Run identity (issue 12): answers carry the settings that made them, resuming into an --out with other settings
for an existing answer is refused before anything is written, and judgments name the answers they judged."""

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from personalign.errors import PersonalignError
from personalign.evaluation.config import EvalConfig
from personalign.evaluation.harness import GENERATIONS, JUDGMENTS, run_eval
from personalign.evaluation.identity import RUN, answer_id, model_identity, persrm_identity
from personalign.models import load_causal_lm
from personalign.reward_model import PersonalizedRewardModel, load_saved
from test_eval_harness import CountingEngine, lines, lora_adapter
from test_pad_engine import perturbed_head
from test_rules_fusion_args import tiny_reward_model
from tiny import tiny_llama

METHODS = ["base", "prompt", "pad", "args", "best-of-n", "soups"]


def make_engine(tokenizer, base=0, head=1):
    return CountingEngine(tiny_llama(base), tokenizer,
                          perturbed_head(PersonalizedRewardModel(tiny_llama(1)), seed=head))


def write_prompts(path, first="How do plants grow?"):
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n"
                            for i, p in enumerate([first, "Tell me about the moon"])))
    return str(path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, smol_tokenizer):
    """A finished run of every kind of method (one preference, two prompts), the files its variants need, and its
    config's fields."""
    root = tmp_path_factory.mktemp("finished")
    lora_adapter(root / "a", 1)
    lora_adapter(root / "b", 2)
    tiny_reward_model().save_pretrained(root / "rm")
    smol_tokenizer.save_pretrained(root / "rm")
    write_prompts(root / "other.jsonl", first="How do trees grow?")  # same ids, another text for q0
    fields = dict(methods=METHODS, preferences=["concise"], prompts=write_prompts(root / "prompts.jsonl"),
                  max_new_tokens=3, best_of_n=2, soups={"concise": str(root / "a")}, out=str(root / "run"))
    run_eval(EvalConfig.from_dict(fields), make_engine(smol_tokenizer), progress=False)
    return root, fields


def copy_of(finished, tmp_path):
    root, fields = finished
    out = tmp_path / "run"
    shutil.copytree(root / "run", out)
    return {**fields, "out": str(out)}


def snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def refusal(fields, engine):
    """The one-line refusal of a rerun, checked to have generated and written nothing."""
    out = Path(fields["out"])
    before = snapshot(out)
    with pytest.raises(PersonalignError) as error:
        run_eval(EvalConfig.from_dict(fields), engine, progress=False)
    assert getattr(engine, "requests", 0) == 0 and snapshot(out) == before
    message = str(error.value)
    assert "\n" not in message and "use another --out" in message
    return message


def test_answers_carry_their_settings_and_the_run_its_identity(finished):
    root, fields = finished
    answers = {a["method"]: a["settings"] for a in lines(root / "run" / GENERATIONS)}
    assert set(answers["base"]) == {"method", "beta", "prompt", "base", "dtype", "max_new_tokens"}
    assert set(answers["soups"]) == set(answers["base"]) | {"soups"}
    assert set(answers["prompt"]) == set(answers["base"]) | {"template"}
    assert set(answers["pad"]) == set(answers["prompt"]) | {"top_k", "persrm", "end_of_turn"}
    assert set(answers["args"]) == set(answers["prompt"]) | {"top_k", "reward_judge"}
    assert set(answers["best-of-n"]) == set(answers["args"]) | {"best_of_n", "temperature", "seed"}
    assert answers["pad"]["max_new_tokens"] == 3 and answers["best-of-n"]["seed"] == 0
    run = json.loads((root / "run" / RUN).read_text())
    assert run["config"]["methods"] == METHODS and run["identity"]["persrm"] == answers["pad"]["persrm"]
    judged = {a["key"]: answer_id(a) for a in lines(root / "run" / GENERATIONS)}
    assert all(j["answer"] == judged[j["key"]] for j in lines(root / "run" / JUDGMENTS))


@pytest.mark.parametrize("change, engine, field", [
    (dict(max_new_tokens=4), {}, "max_new_tokens"),
    (dict(top_k=5), {}, "top_k"),
    (dict(seed=1), {}, "seed"),
    (dict(temperature=0.9), {}, "temperature"),
    (dict(best_of_n=3), {}, "best_of_n"),
    (dict(end_of_turn="reward"), {}, "end_of_turn"),
    (dict(reward_judge="hf:{root}/rm@concise"), {}, "reward_judge"),
    (dict(soups={"concise": "{root}/b"}), {}, "soups"),
    (dict(prompts="{root}/other.jsonl"), {}, "prompt"),
    ({}, dict(head=2), "persrm"),
    ({}, dict(base=2), "base"),
])
def test_a_changed_setting_is_refused_by_name(finished, tmp_path, smol_tokenizer, change, engine, field):
    root, _ = finished
    change = json.loads(json.dumps(change).replace("{root}", str(root)))
    message = refusal({**copy_of(finished, tmp_path), **change}, make_engine(smol_tokenizer, **engine))
    assert re.search(rf"[(;] ?{field} \S", message) and message.count(" there, ") == 1, message


def test_a_changed_prompt_template_is_refused(finished, tmp_path, smol_tokenizer, monkeypatch):
    monkeypatch.setattr("personalign.prompts.PAD_PRINCIPLE_TEMPLATE", "Be {principle}. {instruction}")
    assert "(template " in refusal(copy_of(finished, tmp_path), make_engine(smol_tokenizer))


def test_another_persrm_reuses_the_answers_it_does_not_decide(finished, tmp_path, smol_tokenizer):
    fields = {**copy_of(finished, tmp_path), "methods": ["base", "prompt", "fusion"]}
    before = {a["key"]: a for a in lines(tmp_path / "run" / GENERATIONS)}
    engine = make_engine(smol_tokenizer, head=2)
    run_eval(EvalConfig.from_dict(fields), engine, progress=False)
    after = {a["key"]: a for a in lines(tmp_path / "run" / GENERATIONS)}
    assert engine.requests == 2  # only fusion's two new answers
    assert {k: a for k, a in after.items() if not k.startswith("fusion|")} == before
    [persrm] = {a["settings"]["persrm"] for k, a in after.items() if k.startswith("fusion|")}
    assert persrm != before["pad|1|concise|q0"]["settings"]["persrm"]
    engine.requests = 0
    assert "(persrm " in refusal({**fields, "methods": ["base", "pad"]}, engine)


def test_a_persrm_saved_again_into_the_same_directory_is_refused(smol_tokenizer, tmp_path):
    persrm_dir = tmp_path / "persrm"
    perturbed_head(PersonalizedRewardModel(tiny_llama(1)), seed=1).save_pretrained(persrm_dir)
    fields = dict(methods=["pad"], preferences=["concise"], prompts=write_prompts(tmp_path / "p.jsonl"),
                  max_new_tokens=2, out=str(tmp_path / "run"))
    run_eval(EvalConfig.from_dict(fields), CountingEngine(tiny_llama(0), smol_tokenizer,
                                                          load_saved(str(persrm_dir), tiny_llama(1))), progress=False)
    perturbed_head(PersonalizedRewardModel(tiny_llama(1)), seed=2).save_pretrained(persrm_dir)
    engine = CountingEngine(tiny_llama(0), smol_tokenizer, load_saved(str(persrm_dir), tiny_llama(1)))
    assert "(persrm " in refusal(fields, engine)


def test_another_dtype_is_refused(smol_tokenizer, tmp_path):
    tiny_llama(0).save_pretrained(tmp_path / "base")
    smol_tokenizer.save_pretrained(tmp_path / "base")
    fields = dict(methods=["base"], preferences=["concise"], prompts=write_prompts(tmp_path / "p.jsonl"),
                  max_new_tokens=2, out=str(tmp_path / "run"))
    model, tokenizer = load_causal_lm(str(tmp_path / "base"), device="cpu", dtype="float32")
    run_eval(EvalConfig.from_dict(fields), CountingEngine(model, tokenizer), progress=False)
    model, tokenizer = load_causal_lm(str(tmp_path / "base"), device="cpu", dtype="bfloat16")
    message = refusal(fields, CountingEngine(model, tokenizer))
    assert '(dtype "float32" there, "bfloat16" now)' in message  # the same base directory: only the dtype


def test_a_directory_from_before_run_identity_is_refused(finished, tmp_path, smol_tokenizer):
    fields = copy_of(finished, tmp_path)
    old = [{k: v for k, v in a.items() if k != "settings"} for a in lines(tmp_path / "run" / GENERATIONS)]
    (tmp_path / "run" / GENERATIONS).write_text("".join(json.dumps(a) + "\n" for a in old))
    assert "from before answers recorded their settings" in refusal(fields, make_engine(smol_tokenizer))


def test_another_baseline_judges_the_wins_anew(finished, tmp_path, smol_tokenizer):
    fields = {**copy_of(finished, tmp_path), "methods": ["base", "prompt", "pad"], "baseline": "prompt"}
    engine = make_engine(smol_tokenizer)
    run_eval(EvalConfig.from_dict(fields), engine, progress=False)
    assert getattr(engine, "requests", 0) == 0  # the answers are reused
    answers = {a["key"]: a for a in lines(tmp_path / "run" / GENERATIONS)}
    wins = [j for j in lines(tmp_path / "run" / JUDGMENTS) if j["kind"] == "win" and j["key"].startswith("pad|")]
    fresh = [j for j in wins if j["baseline"] == answer_id(answers[j["key"].replace("pad|1|", "prompt|0|")])]
    assert len(fresh) == 2 and len(wins) == 4  # the wins against base stay on file, beside the new ones
    with open(tmp_path / "run" / "results.csv") as f:
        [row] = [r for r in csv.DictReader(f) if r["method"] == "pad" and r["metric"] == "win_rate"]
    assert int(row["n"]) == 2 and float(row["value"]) == pytest.approx(sum(j["value"] for j in fresh) / 2)


def test_models_and_persrms_are_told_apart(monkeypatch):
    base = tiny_llama(0)
    assert model_identity(base) == model_identity(tiny_llama(0)) != model_identity(tiny_llama(1))
    assert persrm_identity(PersonalizedRewardModel(base), base) == "untrained over the base"
    one, two = (persrm_identity(perturbed_head(PersonalizedRewardModel(tiny_llama(1)), seed=s), base) for s in (1, 2))
    assert one != two and one.endswith("over " + model_identity(tiny_llama(1)))
    hub = tiny_llama(0)
    hub.config._name_or_path = "org/tiny"
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache",
                        lambda repo, name: f"/hub/models--org--tiny/snapshots/abc123/{name}")
    assert model_identity(hub) == "org/tiny@abc123"
