"""The meta-prompting method (MetaAlign's meta-prompt read by the untrained base): its one row reads the rendered
meta-prompt, it decodes as plain greedy generation of those ids, and System Info travels through the library, the
command line and eval's run identity."""

import json

import pytest
import torch

from personalign import Engine, GenerationRequest
from personalign.cli import main
from personalign.errors import PersonalignError
from personalign.evaluation.config import EvalConfig
from personalign.evaluation.harness import GENERATIONS, run_eval
from personalign.meta_prompt import MetaPrompt, render_meta_ids
from tiny import tiny_llama

PROMPT = "How do plants grow?"


def test_the_row_reads_the_meta_prompt_and_decodes_as_plain_greedy(smol_tokenizer):
    model = tiny_llama(0)
    [result] = Engine(model, smol_tokenizer).generate([GenerationRequest(
        PROMPT, "I teach literature", method="meta-prompting", system_info="Answer in French.", max_new_tokens=6)])
    ids = render_meta_ids(smol_tokenizer, PROMPT, MetaPrompt("Answer in French.", "I teach literature"))
    assert result.prompt_token_ids == ids
    plain = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=6, pad_token_id=2)[0, len(ids):]
    assert result.token_ids == plain.tolist()[:len(result.token_ids)]


def test_system_info_is_for_meta_prompt_methods_only():
    with pytest.raises(PersonalignError, match="system_info is read by meta-prompt methods only"):
        GenerationRequest(PROMPT, "concise", method="pad", system_info="Be safe.")
    with pytest.raises(PersonalignError, match="system_info is empty"):
        GenerationRequest(PROMPT, "concise", method="meta-prompting", system_info="  ")
    with pytest.raises(PersonalignError, match="needs a preference"):
        GenerationRequest(PROMPT, method="meta-prompting")


def test_the_command_line_takes_both_tiers(capsys, tiny_model_dir, reuse_loaded_models):
    code = main(["generate", PROMPT, "--method", "meta-prompting", "--system-info", "Answer in French.",
                 "--user-info", "I am a nurse", "--max-new-tokens", "2", "--json", "--base", tiny_model_dir,
                 "--persrm", "untrained"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [record] = [json.loads(line) for line in out.splitlines()]
    from personalign.models import load_tokenizer
    shown = load_tokenizer(tiny_model_dir).decode(record["prompt_token_ids"])
    assert "System Info: Answer in French.\nUser Info: I am a nurse" in shown


def test_eval_records_system_info_and_refuses_a_resume_with_another(tmp_path, smol_tokenizer):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "q0", "prompt": PROMPT}) + "\n")
    fields = dict(methods=["meta-prompting"], baseline="prompt", preferences=["concise"], prompts=str(prompts),
                  max_new_tokens=2, system_info="Be brief.", out=str(tmp_path / "run"))
    run_eval(EvalConfig.from_dict(fields), Engine(tiny_llama(0), smol_tokenizer), progress=False)
    answers = [json.loads(line) for line in (tmp_path / "run" / GENERATIONS).read_text().splitlines()]
    meta = next(a for a in answers if a["method"] == "meta-prompting")
    assert meta["settings"]["system_info"] == "Be brief." and meta["settings"]["meta_rendering"]
    assert "system_info" not in next(a for a in answers if a["method"] == "prompt")["settings"]
    with pytest.raises(PersonalignError, match="system_info"):
        run_eval(EvalConfig.from_dict({**fields, "system_info": "Be thorough."}),
                 Engine(tiny_llama(0), smol_tokenizer), progress=False)
