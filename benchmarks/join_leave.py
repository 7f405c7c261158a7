"""Continuous batching's churn: a running batch where one request leaves and another joins at every step, with
rows joining in place and leaving lazily (RowRunner) against copying the whole KV cache at each join and leave
(the runner before this change, kept here as the baseline), side by side in one process.

    .venv/bin/python benchmarks/join_leave.py [--batch-sizes 8,32] [--steps 64] [--context 256]

Each row of the batch holds `--context` tokens of cache when the churn starts; each step feeds every row a token,
then retires the oldest row and prefills a new 40-token prompt into the batch. The table gives the median
milliseconds of such a step and the whole-cache copies made.
"""

import argparse
import statistics
import time

import torch

from personalign.decoding.runner import RowRunner
from personalign.models import load_causal_lm


class CopyingRunner(RowRunner):
    """The baseline: every leave compacts and every join re-pads the whole cache."""

    def keep(self, rows):
        super().keep(rows)
        if rows and self.mask.shape[0] > len(self.slots):
            self._compact()

    def _merge(self, cache, mask, adapter):
        if self.cache is not None:
            self._compact(max(mask.shape[1], self.mask.shape[1]))
        super()._merge(cache, mask, adapter)
        if self.cache is not None and len(self.slots) > len(adapter):
            self._compact()  # the old runner's torch.cat: one more full copy


def churn(runner_class, model, batch: int, steps: int, context: int) -> tuple[float, int]:
    generator = torch.Generator().manual_seed(0)
    runner = runner_class(model)
    runner.add(torch.randint(100, 20000, (batch, context), generator=generator).tolist(), [None] * batch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        runner.step(torch.randint(100, 20000, (runner.num_rows,), generator=generator))
        runner.keep(list(range(1, runner.num_rows)))
        runner.add([torch.randint(100, 20000, (40,), generator=generator).tolist()], [None])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), runner.copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--context", type=int, default=256)
    args = parser.parse_args()
    model, _ = load_causal_lm(None, device="cpu", dtype="fp32")
    torch.set_grad_enabled(False)
    print("| batch | runner | ms per step (step + leave + join) | whole-cache copies |")
    print("|---|---|---|---|")
    for batch in map(int, args.batch_sizes.split(",")):
        for name, runner_class in (("copy at each join and leave", CopyingRunner), ("in place (RowRunner)",
                                                                                   RowRunner)):
            ms, copies = churn(runner_class, model, batch, args.steps, args.context)
            print(f"| {batch} | {name} | {ms:.1f} | {copies} |", flush=True)


if __name__ == "__main__":
    main()
