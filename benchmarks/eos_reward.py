"""Why PAD never stops early: its reward for the end of turn where preference prompting's answer ends.

    .venv/bin/python benchmarks/eos_reward.py --eval runs/eval-all --preference concise [--persrm DIR]

For each prompting answer of an `personalign eval` run that ended with the end of turn under `--preference`, the
base reads the same ids (PAD's template with the preference, then the answer) and PAD's released rule is applied at
that last step, exactly as the engine would (the base's top-k, r = l_theta - l_b over them, score = z_b + beta r).
It prints where the end of turn stands among the base's candidates, its reward, and where PAD's score puts it.
"""

import argparse
import json
from pathlib import Path
from statistics import median

import torch

from personalign import load_engine
from personalign.decoding.rules import pad_reward, pad_scores, top_candidates
from personalign.preferences import Preference
from personalign.prompts import render_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, required=True, help="an eval run with the prompt method's answers")
    parser.add_argument("--preference", default="concise")
    parser.add_argument("--persrm", default=None, help="a saved PersRM (default: the shipped one)")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    engine = load_engine(persrm=args.persrm)
    tokenizer, persrm = engine.tokenizer, engine.persrm
    if not persrm.has_adapter:
        raise SystemExit("this check reads a LoRA PersRM (its base rows run with the adapter off)")
    eos = tokenizer.eos_token_id
    records = [json.loads(line) for line in (args.eval / "generations.jsonl").read_text().splitlines()]
    ended = [r for r in records if r["method"] == "prompt" and r["preference"] == args.preference
             and r["finish_reason"] == "eos"][:args.limit]
    principle = Preference.parse(args.preference).text
    print(f"{len(ended)} prompting answers that ended under {args.preference!r}; PersRM: {args.persrm or 'shipped'}")
    print(f"{'prompt':<40} {'EOS base rank':>13} {'EOS reward':>10} {'EOS PAD rank':>12} {'best reward':>11}")
    rewards, ranks = [], []
    for record in ended:
        ids = torch.tensor([render_ids(tokenizer, record["prompt"], principle)
                            + [t for t in record["token_ids"] if t != eos]])
        with torch.no_grad():
            with persrm.backbone.disable_adapter():
                base = persrm.causal_lm(input_ids=ids).logits[:, -1]
            guide = persrm(ids)[:, -1]
        cand, base_c, live = top_candidates(base, torch.tensor([args.top_k]))
        reward = pad_reward(guide.gather(-1, cand)[:, None, :], torch.ones(1, 1), base_c, live)[0]
        score = pad_scores(base_c, reward[None], torch.tensor([args.beta]), live)[0]
        where = (cand[0] == eos).nonzero()
        if not len(where):
            print(f"{record['prompt'][:40]:<40} {'not in top-k':>13}")
            continue
        i = where.item()
        rewards.append(reward[i].item())
        ranks.append(int((score > score[i]).sum()) + 1)
        print(f"{record['prompt'][:40]:<40} {i + 1:>13} {reward[i].item():>10.2f} {ranks[-1]:>12} "
              f"{reward.max().item():>11.2f}")
    if rewards:
        print(f"median EOS reward {median(rewards):.2f}; PAD ranks EOS first in {ranks.count(1)} of {len(ranks)}")


if __name__ == "__main__":
    main()
