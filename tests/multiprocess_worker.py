"""Run by tests/test_multiprocess.py, alone or under torchrun: one offline job into DIR/OUT.

    train: a PersRM on a tiny Llama with the toy pairs, `--batch-size` pairs per process (2 processes at 2 train
           what 1 process at 4 does), no dropout (masks drawn per process could not match one process's);
    policy: a MetaAlign policy (SFT, then DPO) on a tiny Llama with the toy meta-prompt pairs of
            tests/test_train_policy.py, `--batch-size` per process, no dropout (`--sampled`: DPO on pairs sampled
            from the SFT policy);
    synth: pair synthesis with the stand-in decoder of tests/test_synth.py from DIR/prompts.jsonl (`--fail-after N`:
           the process dies after N batches, as a kill would).
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def train(args) -> None:
    from personalign.models import embedded_model_dir, load_tokenizer
    from personalign.training.trainer import train_persrm
    from test_train_rm import toy_config
    from tiny import tiny_llama

    config = toy_config(args.dir, out=str(args.dir / args.out), batch_size=args.batch_size, stage1_steps=6,
                        stage2_steps=2, eval_every=4, save_every=4, log_every=1, lora_dropout=0.0, head_dropout=0.0,
                        lr_stage1=1e-3, lr_stage2=1e-3)
    train_persrm(config, model=tiny_llama(0), tokenizer=load_tokenizer(str(embedded_model_dir())),
                 backbone_name="tiny", progress=False)


def policy(args) -> None:
    from personalign.models import embedded_model_dir, load_tokenizer
    from personalign.training.policy import train_policy
    from test_train_policy import configs, longer_is_better
    from tiny import tiny_llama

    run, sft, dpo = configs(args.dir / "data", args.dir / args.out, lora_dropout=0.0)
    run.batch_size = args.batch_size
    if args.sampled:
        dpo = replace(dpo, dpo_pairs="sampled", dpo_contexts=6, dpo_samples=3, dpo_sample_tokens=6,
                      dpo_temperature=1.5, dpo_min_on_question=0.0)  # the guard: test_train_policy.py
    train_policy(run, sft, dpo, progress=False, model=tiny_llama(0),
                 tokenizer=load_tokenizer(str(embedded_model_dir())), pair_judge=longer_is_better)


def synth(args) -> None:
    from personalign.data.synth import SynthConfig, synthesize
    from personalign.evaluation.judges.offline import OfflineJudge
    from personalign.evaluation.judges.relevance import RelevanceJudge
    from personalign.evaluation.judges.trained import HashingEmbedder
    from test_synth import SynthStandIn

    config = SynthConfig(prompts=str(args.dir / "prompts.jsonl"), limit=None, dimensions=("concise", "informative"),
                         free_text=("I love cooking vegetables",), free_per_prompt=1, batch_size=2, min_margin=0.5,
                         min_on_question=0.0)
    synthesize(config, args.dir / args.out, SynthStandIn(args.fail_after), OfflineJudge(),
               RelevanceJudge(HashingEmbedder()), progress=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=("train", "policy", "synth"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sampled", action="store_true")
    parser.add_argument("--fail-after", type=int, default=None)
    args = parser.parse_args()
    {"train": train, "policy": policy, "synth": synth}[args.job](args)


if __name__ == "__main__":
    main()
