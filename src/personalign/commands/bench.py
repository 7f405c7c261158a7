"""`personalign bench`: tokens/s of plain decoding, PAD through the engine, and the released no-cache PAD loop.

Each row is the median of --repeat runs (the no-cache loop: one run), the rows of a group timed in turns so that
the machine's drift spreads over them all. Every run decodes a fixed number of tokens (end-of-sequence ignored) so
rows compare like for like. Peak memory is the process's resident memory (model weights included) sampled during
the run. Run it alone: other busy processes on the same cores distort every figure.
"""

import json
import sys
import threading
import time

import torch

from . import quiet_loading
from ..decoding.request import GenerationRequest
from ..errors import PersonalignError
from ..preferences import Preference
from ..prompts import render_ids
from ..reward_model import PersonalizedRewardModel

PROMPTS = [
    "How do vaccines work?", "Give me three tips for a job interview.", "Why is the sky blue?",
    "Explain what a mortgage is.", "Write a short note thanking a colleague.", "What is a black hole?",
    "How should I start learning to cook?", "What causes inflation?",
]
PREFERENCE = Preference.parse("concise")
PLAIN, HEAD_ONLY = "plain model.generate", "PAD engine, head-only, released"
RELEASED_LOOP = "released PAD loop (no cache)"


def run(args) -> int:
    from ..api import load_engine

    batch_sizes = _ints(args.batch_sizes, "--batch-sizes")
    released_lengths = _ints(args.released_tokens, "--released-tokens") if args.released_tokens else []
    if args.max_new_tokens < 1:
        raise PersonalignError("--max-new-tokens must be >= 1")
    if args.repeat < 1:
        raise PersonalignError("--repeat must be >= 1")
    if args.lora_rank < 0:
        raise PersonalignError("--lora-rank must be >= 0 (0 skips the LoRA rows)")
    quiet_loading()
    engine = load_engine(args.base, device=args.device, dtype=args.dtype)  # its default PersRM and policy
    default = "untrained PersRM" if engine.persrm.is_untrained else "shipped PersRM"
    n = args.max_new_tokens
    _plain(engine, 1, 4)  # warm-up: allocator, kernels, lazy inits
    _pad(engine, 1, 4, "released")
    # groups of rows timed in turns (each run of every row, then the next run: the machine's drift spreads over
    # all rows of a group); each later group's engine is built on first use, so an earlier group's memory does not
    # include its copy of the model
    same_model = []  # plain decoding and the default PersRM on the same model: their memory compares
    for batch in batch_sizes:
        same_model.append((PLAIN, batch, n, lambda b=batch: _plain(engine, b, n)))
        same_model.append((f"PAD engine, {default}", batch, n, lambda b=batch: _pad(engine, b, n, "released")))
    built = {}
    head_only = [(f"PAD engine, head-only, {form}", batch, n,
                  lambda b=batch, f=form: _pad(_head_only_engine(built, args), b, n, f))
                 for batch in batch_sizes for form in ("released", "decoupled")]
    head_only += [(HEAD_ONLY, 1, length, lambda m=length: _pad(_head_only_engine(built, args), 1, m, "released"))
                  for length in released_lengths if length != n or 1 not in batch_sizes]
    lora = [(f"PAD engine, LoRA r={args.lora_rank} PersRM", batch, n,
             lambda b=batch: _pad(_lora_engine(built, _head_only_engine(built, args), args.lora_rank), b, n,
                                  "released")) for batch in batch_sizes if args.lora_rank]
    released = [(RELEASED_LOOP, 1, length, lambda m=length: _released_loop(_head_only_engine(built, args), m))
                for length in released_lengths]  # minutes per run: timed once
    meta = {"model": str(engine.model.config._name_or_path), "dtype": str(engine.model.dtype),
            "device": str(engine.base_runner.device), "threads": torch.get_num_threads(), "k": 10,
            "persrm": default}
    if not args.json:
        _print_header(meta)
    rows = []
    for group, repeat in ((same_model, args.repeat), (head_only, args.repeat), (lora, args.repeat), (released, 1)):
        runs = [[] for _ in group]
        for turn in range(repeat):
            for (name, batch, tokens, fn), timed in zip(group, runs):
                if args.json:  # progress on stderr; the JSON document comes at the end
                    print(f"[run {turn + 1}/{repeat}] {name}, batch {batch}, {tokens} tokens", file=sys.stderr,
                          flush=True)
                timed.append(_timed(fn))
        for (name, batch, tokens, _), timed in zip(group, runs):
            rows.append(_row(name, batch, tokens, timed))
            _add_ratio(rows)
            if not args.json:
                _print_row(rows[-1])
    targets = _targets(rows, n, batch_sizes, released_lengths, default)
    if args.json:
        print(json.dumps({"setup": meta, "rows": rows, "targets": targets}, indent=2))
    else:
        print()
        for t in targets:
            print(f"{t['what']:<62} {t['value']:>7.2f}   (target {t['target']})")
    return 0


def _targets(rows: list[dict], n: int, batch_sizes: list[int], released_lengths: list[int], default: str) -> list[dict]:
    """The speed targets (issue 2's for the head-only PersRM, issue 14's for the default one), from the rows."""
    def find(loop, batch, tokens=n):
        return next((r for r in rows if r["loop"] == loop and r["batch"] == batch and r["new_tokens"] == tokens), None)

    def ratio(what, target, row, plain, key="ms_per_step"):
        if row and plain:
            targets.append({"what": what, "target": target, "value": round(row[key] / plain[key], 2)})

    targets, big, shipped = [], max(batch_sizes), f"PAD engine, {default}"
    ratio(f"{default}: PAD step latency / plain, batch 1", "<= 1.15", find(shipped, 1), find(PLAIN, 1))
    if big > 1:
        ratio(f"{default}: PAD step latency / plain, batch {big}", "<= 1.0", find(shipped, big), find(PLAIN, big))
    ratio(f"{default}: PAD peak memory / plain, batch {big}", "<= 1.2", find(shipped, big), find(PLAIN, big),
          "peak_mem_mib")
    ratio("head-only: PAD step latency / plain, batch 1", "<= 1.5", find(HEAD_ONLY, 1), find(PLAIN, 1))
    for length in released_lengths:
        ratio(f"head-only: PAD engine speed / released no-cache loop, {length} tokens", ">= 10",
              find(HEAD_ONLY, 1, length), find(RELEASED_LOOP, 1, length), "tokens_per_s")
    if big > 1:
        ratio(f"head-only: PAD throughput batch {big} / batch 1", ">= 4", find(HEAD_ONLY, big), find(HEAD_ONLY, 1),
              "tokens_per_s")
    return targets


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PersonalignError(f"{flag} takes comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise PersonalignError(f"{flag} takes whole numbers >= 1, got {text!r}")
    return values


def _row(name: str, batch: int, tokens: int, runs: list[tuple[float, int]]) -> dict:
    """Median time of the runs (this machine's speed drifts from run to run), highest memory seen."""
    runs = sorted(runs)
    seconds, peak = runs[len(runs) // 2][0], max(p for _, p in runs)
    return {"loop": name, "batch": batch, "new_tokens": tokens, "runs": len(runs), "seconds": round(seconds, 3),
            "tokens_per_s": round(batch * tokens / seconds, 2), "ms_per_step": round(1000 * seconds / tokens, 2),
            "peak_mem_mib": round(peak / 2**20, 1)}


def _timed(fn) -> tuple[float, int]:
    sampler = _PeakRss()
    start = time.perf_counter()
    with sampler:
        fn()
    return time.perf_counter() - start, sampler.peak


def _requests(batch: int, n: int, **kw) -> list[GenerationRequest]:
    return [GenerationRequest(PROMPTS[i % len(PROMPTS)], PREFERENCE, max_new_tokens=n, ignore_eos=True, **kw)
            for i in range(batch)]


def _plain(engine, batch: int, n: int) -> None:
    tok = engine.tokenizer
    prompts = [tok.decode(render_ids(tok, PROMPTS[i % len(PROMPTS)], PREFERENCE.text)) for i in range(batch)]
    inputs = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(engine.base_runner.device)
    with engine.bare_model():  # plain decoding of the base, not through a LoRA PersRM injected into it
        engine.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                              pad_token_id=tok.pad_token_id)


def _pad(engine, batch: int, n: int, form: str) -> None:
    engine.generate(_requests(batch, n, reward=form, beta=1.0))


def _head_only_engine(built: dict, args):
    """An engine over a bare copy of the base whose PersRM is that model plus an untrained head (the released
    architecture: one forward row per request); made once, kept in `built`."""
    if "head-only" not in built:
        from ..api import UNTRAINED, load_engine

        built["head-only"] = load_engine(args.base, UNTRAINED, policy=UNTRAINED, device=args.device,
                                         dtype=args.dtype)
        _pad(built["head-only"], 1, 4, "released")  # warm-up
    return built["head-only"]


def _lora_engine(built: dict, engine, rank: int):
    """An engine whose PersRM is a copy of the base plus a LoRA adapter on q and v (random, so not a no-op), run
    through per-row LoRA in the same forward as the base rows; made once, kept in `built`."""
    if "lora" in built:
        return built["lora"]
    import copy

    from peft import LoraConfig, get_peft_model

    from ..decoding.engine import Engine
    from ..reward_model import ADAPTER_NAME

    model = copy.deepcopy(engine.model)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    persrm = PersonalizedRewardModel(get_peft_model(model, config, adapter_name=ADAPTER_NAME).eval())
    built["lora"] = Engine(model, engine.tokenizer, persrm)
    return built["lora"]


@torch.inference_mode()
def _released_loop(engine, n: int) -> None:
    """The released code's loop: no KV cache (both models re-encode the whole prefix every step), batch 1, the
    PersRM a second copy of the model."""
    persrm = getattr(engine, "_bench_copy", None)
    if persrm is None:
        import copy

        persrm = engine._bench_copy = PersonalizedRewardModel(copy.deepcopy(engine.model)).eval()
    ids = torch.tensor([render_ids(engine.tokenizer, PROMPTS[0], PREFERENCE.text)], device=engine.base_runner.device)
    for _ in range(n):
        z_b = engine.model(ids).logits[0, -1].float()
        z_theta = persrm(ids)[0, -1].float()
        top, cand = z_b.topk(10)
        reward = z_theta[cand].log_softmax(-1) - top.log_softmax(-1)
        token = cand[(top + 1.0 * reward).argmax()]
        ids = torch.cat([ids, token.view(1, 1)], 1)


def _add_ratio(rows: list[dict]) -> None:
    """The newest row's step time against plain decoding at the same batch size and length, if measured."""
    row = rows[-1]
    plain = [r["ms_per_step"] for r in rows if r["loop"].startswith("plain")
             and (r["batch"], r["new_tokens"]) == (row["batch"], row["new_tokens"])]
    row["x_plain_latency"] = round(row["ms_per_step"] / plain[0], 2) if plain else None


_COLUMNS = f"{'loop':<34} {'batch':>5} {'tokens':>6} {'tok/s':>8} {'ms/step':>8} {'x plain':>8} {'peak MiB':>9}"


def _print_header(meta: dict) -> None:
    print(f"model {meta['model']}  dtype {meta['dtype']}  device {meta['device']}  threads {meta['threads']}  "
          f"k {meta['k']}  greedy")
    print(_COLUMNS)
    print("-" * len(_COLUMNS), flush=True)


def _print_row(r: dict) -> None:
    ratio = f"{r['x_plain_latency']:.2f}" if r["x_plain_latency"] is not None else "-"
    print(f"{r['loop']:<34} {r['batch']:>5} {r['new_tokens']:>6} {r['tokens_per_s']:>8.2f} "
          f"{r['ms_per_step']:>8.2f} {ratio:>8} {r['peak_mem_mib']:>9.1f}", flush=True)


class _PeakRss:
    """Samples this process's resident memory (weights included) every 5 ms; `peak` is the highest value seen."""

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
