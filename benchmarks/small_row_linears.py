"""Linears on few rows (decoding/small_rows.py): `F.linear(x, W)` against `W @ xᵀ`, side by side in one process.

    .venv/bin/python benchmarks/small_row_linears.py [--repeat 7]

First each of SmolLM2-135M's linear shapes alone (30 random weights of a shape, more than the caches hold, as in the
model), then a whole one-token decoder step of the embedded SmolLM2 with a KV cache of 60 tokens, with and without
the engine's few-row linears. Medians of --repeat timings, in µs per product and ms per step.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from personalign.decoding.small_rows import SmallRowLinears
from personalign.models import load_causal_lm

SHAPES = {"q, o 576x576": (576, 576), "k, v 192x576": (192, 576), "gate, up 1536x576": (1536, 576),
          "down 576x1536": (576, 1536)}
ROWS = (1, 2, 4, 8, 16, 32, 64)


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def products(repeat: int) -> None:
    generator = torch.Generator().manual_seed(0)
    print(f"{'µs per product':<18}" + "".join(f"{f'{m} rows':>16}" for m in ROWS))
    for name, (out, inp) in SHAPES.items():
        weights = [torch.randn(out, inp, generator=generator) for _ in range(30)]
        cells = []
        for rows in ROWS:
            x = torch.randn(rows, inp, generator=generator)
            plain = median_seconds(lambda: [F.linear(x, w) for w in weights], repeat) / len(weights)
            transposed = median_seconds(lambda: [(w @ x.T).T.contiguous() for w in weights], repeat) / len(weights)
            cells.append(f"{plain * 1e6:.0f} / {transposed * 1e6:.0f}")
        print(f"{name:<18}" + "".join(f"{c:>16}" for c in cells))
    print("(F.linear / W @ xᵀ)")


def decoder_steps(repeat: int) -> None:
    model, _ = load_causal_lm(dtype="fp32", device="cpu")
    decoder = model.get_decoder()
    linears = SmallRowLinears(decoder)
    linears.enabled = True  # both ways, whatever the engine's own probe says
    print(f"\n{'ms per decoder step':<22}{'F.linear':>10}{'W @ xᵀ':>10}")
    for rows in (1, 2, 8, 16):
        generator = torch.Generator().manual_seed(rows)
        with torch.inference_mode():
            cache = decoder(input_ids=torch.randint(0, 1000, (rows, 60), generator=generator), use_cache=True).cache
        token = torch.randint(0, 1000, (rows, 1), generator=generator)

        @torch.inference_mode()
        def step(fast: bool) -> None:
            with linears.rows(rows if fast else 1):
                decoder(input_ids=token, cache=cache, use_cache=True)
            for layer in cache.layers:  # forget the token just written: every timing sees the same cache
                layer.keys, layer.values = layer.keys[:, :, :60], layer.values[:, :, :60]

        plain, fast = (median_seconds(lambda f=f: step(f), repeat) * 1e3 for f in (False, True))
        print(f"{f'{rows} rows':<22}{plain:>10.1f}{fast:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    products(args.repeat)
    decoder_steps(args.repeat)


if __name__ == "__main__":
    main()
