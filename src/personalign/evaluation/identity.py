"""Run identity: what made each answer, so that resuming into an existing --out never mixes answers made with
different settings.

Every answer record carries `settings` (plan.settings_for: only what decides that method's answer); a rerun whose
answer for an existing key would be made with other settings is refused, naming the fields, before anything is
generated or written. Models are named by where they were loaded from plus a fingerprint of their files, or of
their weights for a model built in memory. run.json keeps the latest run's config and identities for the reader.
"""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from .. import meta_prompt, prompts
from ..errors import PersonalignError
from ..records import write_text_atomic
from .plan import methods_of

RUN = "run.json"
CONTENT_LIMIT = 64 * 2**20  # bytes: files up to this size are fingerprinted by content


def fingerprint_dir(directory) -> str:
    """sha256 over each file's relative path and size, plus its content when it is small (configs, tokenizers, a
    PersRM's head and adapter), else its mtime: reading a base model's GBs of weights at every run would cost more
    than the run's check is worth, and a weight file rewritten in place gets a new mtime. Hidden files (download
    caches, locks) are not part of a model."""
    root = Path(directory)
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root)
        if not file.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        stat = file.stat()
        digest.update(f"{relative.as_posix()}\0{stat.st_size}\0".encode())
        digest.update(file.read_bytes() if stat.st_size <= CONTENT_LIMIT else str(stat.st_mtime_ns).encode())
    return "sha256:" + digest.hexdigest()[:16]


def dir_identity(directory) -> str:
    path = Path(directory).expanduser().resolve()
    return f"{path} {fingerprint_dir(path)}"


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # as bytes: numpy has no bfloat16
    return "sha256:" + digest.hexdigest()[:16]


def model_identity(model) -> str:
    """A causal LM's source with a fingerprint: a local directory's files, a hub id's cached revision, or, for a
    model built in memory (no source), its weights."""
    source = model.config._name_or_path  # what from_pretrained was given
    if source and Path(source).expanduser().is_dir():
        return dir_identity(source)
    if source:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(source, "config.json")  # .../snapshots/<commit>/config.json
        return f"{source}@{Path(cached).parent.name if isinstance(cached, str) else 'unknown revision'}"
    return f"in-memory {model.config.model_type} {tensors_digest(model.state_dict())}"


def persrm_identity(persrm, base) -> str:
    """A saved PersRM's directory, "untrained" for an identity head without adapter, else the weights of its head
    and adapter; then the backbone it runs on."""
    from ..api import UNTRAINED
    backbone = "the base" if persrm.causal_lm is base else model_identity(persrm.causal_lm)
    head = persrm.head
    if persrm.saved_dir:
        what = dir_identity(persrm.saved_dir)
    elif not persrm.has_adapter and not head.bias.any() and torch.equal(
            head.weight, torch.eye(head.in_features, dtype=head.weight.dtype, device=head.weight.device)):
        what = UNTRAINED
    else:
        what = "in-memory " + tensors_digest({k: v for k, v in persrm.state_dict().items()
                                              if k.startswith("head.") or "lora_" in k})
    return f"{what} over {backbone}"


def judge_identity(spec: str) -> str:
    """A judge spec, with the fingerprint of the directory it names (hf:DIR@dims, rm:DIR)."""
    kind, _, arg = spec.partition(":")
    name = arg.rpartition("@")[0] if kind == "hf" and "@" in arg else arg
    path = Path(name).expanduser()
    return f"{spec} {fingerprint_dir(path)}" if name and path.is_dir() else spec


def run_identity(config, engine) -> dict:
    """What the run's answers depend on besides the config's own fields, for the methods it runs: the models and
    their dtype, the MetaAlign policy, the reward judge, the soups adapters, PAD's prompt template and our
    meta-prompt rendering."""
    methods = methods_of(config)
    identity = dict(base=model_identity(engine.model), dtype=str(engine.model.dtype).removeprefix("torch."),
                    template=hashlib.sha256(prompts.PAD_PRINCIPLE_TEMPLATE.encode()).hexdigest()[:12],
                    meta_rendering=hashlib.sha256(json.dumps(meta_prompt.RENDERING).encode()).hexdigest()[:12])
    if any(m.uses_persrm for m in methods):
        identity["persrm"] = persrm_identity(engine.persrm, engine.model)
    if any(m.decoding.base_adapter for m in methods):
        identity["policy"] = dir_identity(engine.policy_source) if engine.policy_source else "none"
    if any(m.uses_reward_judge for m in methods):
        identity["reward_judge"] = judge_identity(config.reward_judge)
    if any(m.merged_weights for m in methods):
        identity["soups"] = {dim: dir_identity(path) for dim, path in sorted(config.soups.items())}
    return identity


def check_resume(out: Path, old: list[dict], settings: dict[str, dict]) -> None:
    """Refuse to resume when an answer already on file (`old`) has this run's key but other settings
    (`settings`: key -> the settings this run would make it with)."""
    if any("settings" not in record for record in old):
        raise PersonalignError(f"--out {out} holds answers from before answers recorded their settings, so they "
                               "cannot be resumed safely; use another --out (or delete that directory)")
    differ = {}
    for record in old:
        now = settings.get(record["key"])
        if now is None:
            continue
        then = record["settings"]
        for name in sorted(set(now) | set(then)):
            if now.get(name) != then.get(name):
                differ.setdefault(name, (then.get(name), now.get(name)))
    if differ:
        fields = "; ".join(f"{name} {_show(then)} there, {_show(now)} now" for name, (then, now) in differ.items())
        raise PersonalignError(f"--out {out} holds answers made with other settings ({fields}); use another --out, "
                               "or the settings they were made with")


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:38] + "…" + text[-38:]  # both ends: a path's start, a hash's end


def answer_id(record: dict) -> str:
    """A short hash of an answer record: its key, its settings and its text (what its judgments depend on)."""
    blob = json.dumps([record["key"], record["settings"], record["text"]], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_run(out: Path, config, identity: dict) -> None:
    """run.json: the latest run's config fields and identities."""
    write_text_atomic(out / RUN, json.dumps(dict(config=asdict(config), identity=identity), indent=2,
                                            ensure_ascii=False) + "\n")
