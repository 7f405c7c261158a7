"""Held-out preference accuracy of a training run's latest checkpoint, scored under either reference.

    .venv/bin/python benchmarks/reference_accuracy.py --run runs/persrm-without --eval-limit 101

`train-rm --reference` picks what the frozen reference reads while training: the preference (`with-preference`,
the reward the released decoding rule computes at every step: ℓ_θ(a|s,p) − ℓ_base(a|s,p)) or the bare prompt
(`without-preference`). A run logs accuracy under its own reference only; PAD decodes with the with-preference
one, so a fair comparison of the two flags scores both runs' PersRMs under both references. The held-out pairs are
the run's own (same split, hold-out and seeded sample for the same --eval-limit).
"""

import argparse
import json
from pathlib import Path

from personalign.models import EMBEDDED_MODEL_NAME, load_causal_lm
from personalign.reward_model import PersonalizedRewardModel
from personalign.training.checkpoint import load_state, restore_weights
from personalign.training.config import REFERENCES, TrainConfig
from personalign.training.trainer import SETTINGS_FILE, encode_groups, evaluate, read_pair_groups


def run_config(run: Path, reference: str, eval_limit: int | None) -> TrainConfig:
    settings = json.loads((run / SETTINGS_FILE).read_text())
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return TrainConfig(**settings | {"out": str(run), "reference": reference, "eval_limit": eval_limit})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a train-rm run directory (its checkpoint is read)")
    parser.add_argument("--eval-limit", type=int, default=101, help="held-out pairs per group, as in the run")
    parser.add_argument("--references", default=",".join(REFERENCES))
    args = parser.parse_args()

    state = load_state(args.run)
    if state is None:
        parser.error(f"{args.run} has no checkpoint")
    base = run_config(args.run, REFERENCES[0], args.eval_limit)
    model, tokenizer = load_causal_lm(base.base, dtype=base.dtype)
    persrm = PersonalizedRewardModel(model, base.base or EMBEDDED_MODEL_NAME, dropout=0.0)
    persrm.add_lora(r=base.lora_r, alpha=base.lora_alpha, dropout=base.lora_dropout, target_modules=base.lora_targets)
    restore_weights(persrm, state["weights"])
    persrm.eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    print(f"{args.run}: trained with reference {json.loads((args.run / SETTINGS_FILE).read_text())['reference']}, "
          f"checkpoint at stage {state['stage']} step {state['step']}")
    print("| scored with reference | group | pairs | accuracy | margin |\n|---|---|---|---|---|")
    for reference in args.references.split(","):
        config = run_config(args.run, reference, args.eval_limit)
        data = encode_groups(read_pair_groups(config), config, tokenizer)
        for group, pairs in data.held_out.items():
            result = evaluate(persrm, pairs, config, pad_id, model.device)
            print(f"| {reference} | {group} | {result['pairs']} | {result['accuracy']:.3f} | {result['margin']:.3f} |")


if __name__ == "__main__":
    main()
