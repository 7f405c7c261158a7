"""`personalign bench-train`: seconds per PersRM training step, stage 1 (LoRA + head) and stage 2 (head alone).

Each step is what `train-rm` does per optimizer step: the reference's forward over chosen and rejected, the
PersRM's forward and backward, and the AdamW update. The pairs are built to the exact length asked (a prompt of
about a quarter of it, the rest response), so padding costs nothing. Run it alone: a second process on the same
cores distorts every row.
"""

import statistics
import time

import torch

from ..errors import PersonalignError


def add_arguments(parser) -> None:
    parser.add_argument("--base", default=None, help="backbone (default: embedded SmolLM2)")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step (default 4)")
    parser.add_argument("--length", type=int, default=256, help="tokens per sequence (default 256)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row, after one warm-up (default 3)")
    parser.add_argument("--mixed-precision", default="no,bf16", help="comma-separated: no, bf16 (default no,bf16)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args) -> int:
    if args.batch_size < 1 or args.length < 16 or args.steps < 1:
        raise PersonalignError("--batch-size and --steps must be >= 1, --length >= 16")
    precisions = [p.strip() for p in args.mixed_precision.split(",") if p.strip()]
    if not precisions or set(precisions) - {"no", "bf16", "fp16"}:
        raise PersonalignError("--mixed-precision takes no, bf16 or fp16, comma-separated")
    from . import quiet_loading
    from ..models import choose_device, load_causal_lm
    from ..reward_model import PersonalizedRewardModel
    from ..training.checkpoint import set_trainable
    from ..training.dpo import SequenceScorer, dpo_terms
    from ..training.features import PairIds, pair_rows

    quiet_loading()
    device = choose_device(args.device)
    model, tokenizer = load_causal_lm(args.base, device=device, dtype="fp32")
    persrm = PersonalizedRewardModel(model, args.base)
    persrm.add_lora()
    persrm.train()
    generator = torch.Generator().manual_seed(0)
    vocab = persrm.vocab_size
    prompt_len = args.length // 4

    def ids(n):
        return tuple(torch.randint(100, vocab, (n,), generator=generator).tolist())

    pairs = [PairIds("bench", ids(prompt_len), ids(prompt_len), ids(args.length - prompt_len),
                     ids(args.length - prompt_len)) for _ in range(args.batch_size)]
    policy, reference = (rows.to(device) for rows in pair_rows(pairs, tokenizer.eos_token_id or 0))
    rows = []
    for precision in precisions:
        for stage in (1, 2):
            scorer = SequenceScorer(persrm, train_backbone=stage == 1)
            optimizer = torch.optim.AdamW(set_trainable(persrm, stage), lr=1e-6)
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

            def step():
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    with torch.no_grad():
                        ref = scorer(reference, reference=True)
                    loss = dpo_terms(scorer(policy), ref, 0.1)["loss"].mean()
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize()

            step()  # warm-up
            times = []
            for _ in range(args.steps):
                began = time.perf_counter()
                step()
                times.append(time.perf_counter() - began)
            seconds = statistics.median(times)
            rows.append({"stage": stage, "mixed_precision": precision, "batch": args.batch_size,
                         "length": args.length, "seconds_per_step": seconds,
                         "tokens_per_second": 2 * args.batch_size * args.length / seconds})
    if args.json:
        import json
        print(json.dumps({"device": str(device), "rows": rows}, indent=2))
        return 0
    print(f"PersRM training step on {device} (median of {args.steps}); batch {args.batch_size} pairs x "
          f"{args.length} tokens")
    print(f"{'stage':<22} {'precision':>9} {'s/step':>8} {'tokens/s':>9}")
    for r in rows:
        label = "1 (LoRA + head)" if r["stage"] == 1 else "2 (head alone)"
        print(f"{label:<22} {r['mixed_precision']:>9} {r['seconds_per_step']:>8.2f} {r['tokens_per_second']:>9.0f}")
    return 0
