"""Per-row LoRA (decoding/row_lora.py) against peft's own mixed-batch path, side by side in one process.

    .venv/bin/python benchmarks/row_lora_speed.py [--repeat 15] [--dtype bf16]

The embedded SmolLM2 carries two LoRA adapters (r = 16 on q, v, random weights). A batch of 8 rows, half through
adapter "a" and half through none, either interleaved (the engine's layout at batch 8: each request's base row,
then its PersRM row; row_lora adds the delta through a strided view) or as two blocks (a plain view), or a quarter
each through "a", "b" and two through none (rows 0, 4 of "a": also a strided view), runs through the decoder (the
unembedding is the same for all) as a one-token forward (a decoding step without cache) and as a 64-token prefill,
by each mechanism in turn; the table gives the median milliseconds. peft's path is reached through its private
`_enable_peft_forward_hooks` here only, as the comparison the library no longer needs.
"""

import argparse
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model

from personalign.decoding.row_lora import RowLoRA
from personalign.models import load_causal_lm


def adapters_on(model):
    generator = torch.Generator().manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]),
                          adapter_name="a")
    peft.add_adapter("b", LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.copy_(0.01 * torch.randn(param.shape, generator=generator))
    return peft.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--dtype", default="fp32", help="fp32 (default) or bf16")
    args = parser.parse_args()
    model, _ = load_causal_lm(None, device="cpu", dtype=args.dtype)
    peft = adapters_on(model)
    row_lora = RowLoRA(peft, ("a", "b"))
    decoder = peft.get_base_model().get_decoder()  # the LoRA layers sit in it; the unembedding would only add noise
    plans = {"a + none, interleaved": ["a", None] * 4, "none, then a (blocks)": [None] * 4 + ["a"] * 4,
             "a + b + none": ["a", "b", None, None] * 2}
    mechanisms = {
        "peft (private mixed batch)": lambda rows: peft._enable_peft_forward_hooks(
            adapter_names=[r or "__base__" for r in rows]),
        "row_lora": row_lora.rows,
        "no adapter (the base alone)": lambda rows: peft.disable_adapter(),
    }
    print(f"| batch of 8 | tokens | {' | '.join(mechanisms)} |")
    print("|---|---|" + "---|" * len(mechanisms))
    for plan_name, rows in plans.items():
        for tokens in (1, 64):
            ids = torch.randint(3, 40000, (8, tokens), generator=torch.Generator().manual_seed(1))
            times = {name: [] for name in mechanisms}
            with torch.inference_mode():
                for _ in range(args.repeat + 1):  # the first round warms up
                    for name, mechanism in mechanisms.items():
                        began = time.perf_counter()
                        with mechanism(rows):
                            decoder(input_ids=ids)
                        times[name].append(time.perf_counter() - began)
            cells = [f"{1000 * statistics.median(t[1:]):.1f}" for t in times.values()]
            print(f"| {plan_name} | {tokens} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
