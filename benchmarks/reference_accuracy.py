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
from dataclasses import replace
from pathlib import Path

from personalign.models import EMBEDDED_MODEL_NAME, load_causal_lm
from personalign.training.checkpoint import load_state, restore_weights
from personalign.training.config import REFERENCES, TrainConfig
from personalign.training.trainer import (SETTINGS_FILE, encode_groups, evaluate, new_persrm, pad_id_of,
                                          read_pair_groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a train-rm run directory (its checkpoint is read)")
    parser.add_argument("--eval-limit", type=int, default=101, help="held-out pairs per group, as in the run")
    parser.add_argument("--references", default=",".join(REFERENCES))
    args = parser.parse_args()

    state = load_state(args.run)
    if state is None:
        parser.error(f"{args.run} has no checkpoint")
    settings = json.loads((args.run / SETTINGS_FILE).read_text())
    trained = TrainConfig.from_outcome_settings(settings, out=str(args.run), eval_limit=args.eval_limit)
    model, tokenizer = load_causal_lm(trained.base, dtype=trained.dtype)
    persrm = new_persrm(model, trained.base or EMBEDDED_MODEL_NAME, trained)
    restore_weights(persrm, state["weights"])
    persrm.eval()
    groups = read_pair_groups(trained)
    pad_id = pad_id_of(tokenizer)
    print(f"{args.run}: trained with reference {trained.reference}, "
          f"checkpoint at stage {state['stage']} step {state['step']}")
    print("| scored with reference | group | pairs | accuracy | margin |\n|---|---|---|---|---|")
    for reference in args.references.split(","):
        config = replace(trained, reference=reference)
        data = encode_groups(groups, config, tokenizer)
        for group, pairs in data.held_out.items():
            result = evaluate(persrm, pairs, config, pad_id, model.device)
            print(f"| {reference} | {group} | {result['pairs']} | {result['accuracy']:.3f} | {result['margin']:.3f} |")


if __name__ == "__main__":
    main()
