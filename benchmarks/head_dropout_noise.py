"""How much noise does dropout on the head's input put into the PersRM's DPO margin? Measured at initialization,
where the untrained PersRM equals its backbone, so every margin is pure noise.

    .venv/bin/python benchmarks/head_dropout_noise.py --pairs runs/synth/pairs.jsonl --limit 32

The spec's released checkpoint trained with dropout 0.1 on h in logits = U(W h + b). The DPO reward sums a
log-ratio over every response token, so per-token noise adds up along the answer. The table prints, per dropout
rate, the mean and standard deviation of the margin r(chosen) - r(rejected) and the mean loss (log 2 = 0.693 is
the noise-free value at initialization).
"""

import argparse
import statistics

import torch
import torch.nn.functional as F

from personalign.data.pairs import read_pairs_jsonl
from personalign.models import load_causal_lm
from personalign.reward_model import PersonalizedRewardModel
from personalign.training.dpo import SequenceScorer, dpo_terms
from personalign.training.features import encode_pairs, pair_rows


def margins(model, tokenizer, encoded, dropout: float, beta: float, batch: int) -> list[float]:
    persrm = PersonalizedRewardModel(model, "backbone", dropout=dropout).train()
    scorer, values = SequenceScorer(persrm), []
    with torch.no_grad():
        for start in range(0, len(encoded), batch):
            policy, reference = pair_rows(encoded[start:start + batch], tokenizer.pad_token_id)
            values += dpo_terms(scorer(policy), scorer(reference, reference=True), beta)["margin"].tolist()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="pairs JSONL (e.g. the output of `personalign data synth`)")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--dropouts", default="0,0.05,0.1")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_causal_lm(None, device="cpu", dtype="fp32")
    encoded, _ = encode_pairs(read_pairs_jsonl(args.pairs)[:args.limit], tokenizer, 256, True)
    print(f"{len(encoded)} pairs, beta {args.beta:g}\n")
    print("| head dropout | margin mean | margin sd | loss |\n|---|---|---|---|")
    for dropout in (float(d) for d in args.dropouts.split(",")):
        values = margins(model, tokenizer, encoded, dropout, args.beta, batch=8)
        loss = statistics.mean(-F.logsigmoid(torch.tensor(v)).item() for v in values)
        print(f"| {dropout:g} | {statistics.mean(values):.3f} | {statistics.pstdev(values):.3f} | {loss:.3f} |")


if __name__ == "__main__":
    main()
