"""The personalized reward model (PersRM) in the released PAD architecture.

A causal-LM backbone whose final hidden state h goes through a d x d linear map W (identity at start, bias zero,
dropout 0.1 in training) before the backbone's own unembedding U: logits = U(W h + b). An optional LoRA adapter
(peft) sits on the backbone. The preference reaches it only as text in the prompt. An untrained PersRM therefore
equals its backbone exactly.

Saved format (a directory): `persrm_config.json` (which backbone, whether there is an adapter), `head.safetensors`
(W, b) and, if any, `adapter/` (peft's own format). The backbone itself is referenced, not copied, so a PersRM
over the embedded model is a few MB.
"""

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import PersonalignError
from .records import write_directory_atomic

CONFIG_NAME = "persrm_config.json"
HEAD_NAME = "head.safetensors"
ADAPTER_DIR = "adapter"
ADAPTER_NAME = "persrm"
FORMAT = "personalign-persrm"


def identity_head(dim: int, like: torch.Tensor) -> nn.Linear:
    head = nn.Linear(dim, dim, bias=True, device=like.device, dtype=like.dtype)
    with torch.no_grad():
        head.weight.copy_(torch.eye(dim))
        head.bias.zero_()
    return head


def logits_at(unembed: nn.Linear, hidden: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """`unembed`'s logits at candidate ids only, [n, K] from hidden [n, d] and ids [n, K]: K rows of U instead of the
    whole vocabulary."""
    logits = torch.bmm(unembed.weight[cand], hidden[:, :, None]).squeeze(-1)
    return logits if unembed.bias is None else logits + unembed.bias[cand]


class PersonalizedRewardModel(nn.Module):
    def __init__(self, backbone, backbone_source: str | None = None, head: nn.Linear | None = None,
                 dropout: float = 0.1):
        """`backbone`: a causal LM, or a peft model over one whose adapter is named `persrm`."""
        super().__init__()
        self.backbone = backbone
        self.backbone_source = backbone_source
        self.saved_dir: str | None = None  # set by load_saved; eval's run identity fingerprints its files
        weight = self.causal_lm.get_output_embeddings().weight
        self.head = head if head is not None else identity_head(weight.shape[1], weight)
        self.dropout = nn.Dropout(dropout)
        self.train(backbone.training)  # a fresh head must not switch dropout on under an eval-mode backbone

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.backbone, "get_base_model")

    @property
    def is_untrained(self) -> bool:
        """No adapter and the identity head: it equals its backbone, and every reward it gives is 0."""
        eye = torch.eye(self.head.weight.shape[0], dtype=self.head.weight.dtype, device=self.head.weight.device)
        return not self.has_adapter and torch.equal(self.head.weight, eye) and not self.head.bias.any()

    @property
    def causal_lm(self):
        """The plain causal LM under the adapter (shared with the base model when the PersRM rides on it)."""
        return self.backbone.get_base_model() if self.has_adapter else self.backbone

    @property
    def vocab_size(self) -> int:
        return self.causal_lm.get_output_embeddings().weight.shape[0]

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """U(W h + b): the PersRM's logits from final hidden states."""
        return self.causal_lm.get_output_embeddings()(self.head(self.dropout(hidden)))

    def candidate_logits(self, hidden: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """The PersRM's logits at candidate ids only, [n, K] from hidden [n, d] and ids [n, K]: K rows of U
        instead of the whole vocabulary (PAD only ever reads the base's top-k)."""
        return logits_at(self.causal_lm.get_output_embeddings(), self.head(self.dropout(hidden)), cand)

    def forward(self, input_ids, attention_mask=None, **kwargs) -> torch.Tensor:
        """Logits at every position (for training and scoring whole answers)."""
        decoder = self.causal_lm.get_decoder()
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return self.head_logits(hidden)

    def add_lora(self, r: int = 16, alpha: int = 32, dropout: float = 0.05,
                 target_modules: tuple[str, ...] = ("q_proj", "v_proj")) -> None:
        """Put a fresh LoRA adapter on the backbone (peft), for training."""
        from peft import LoraConfig, get_peft_model

        if self.has_adapter:
            raise PersonalignError("this PersRM already has an adapter")
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
        self.backbone = get_peft_model(self.backbone, config, adapter_name=ADAPTER_NAME)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the PersRM atomically: a crash never leaves a half-written directory behind."""
        write_directory_atomic(directory, self._save_into)

    def _save_into(self, directory: Path) -> None:
        config = {"format": FORMAT, "version": 1, "backbone": self.backbone_source, "adapter": self.has_adapter,
                  "hidden_size": self.head.in_features, "vocab_size": self.vocab_size}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}, directory / HEAD_NAME)
        if self.has_adapter:
            self.backbone.save_pretrained(directory / ADAPTER_DIR, selected_adapters=[ADAPTER_NAME])


def is_saved_persrm(source: str) -> bool:
    return (Path(source) / CONFIG_NAME).is_file()


def read_config(directory: str) -> dict:
    try:
        config = json.loads((Path(directory) / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PersonalignError(f"cannot read PersRM config in {directory}: {exc}") from None
    if config.get("format") != FORMAT:
        raise PersonalignError(f"{directory} is not a personalign PersRM (format {config.get('format')!r})")
    return config


def load_saved(directory: str, backbone) -> PersonalizedRewardModel:
    """A saved PersRM on the given backbone (a causal LM, possibly the base model itself: weights are shared)."""
    config = read_config(directory)
    if config["hidden_size"] != backbone.get_output_embeddings().weight.shape[1]:
        raise PersonalignError(f"PersRM {directory} was trained for hidden size {config['hidden_size']}, "
                               f"its backbone has {backbone.get_output_embeddings().weight.shape[1]}")
    if config["adapter"]:
        from peft import PeftModel

        backbone = PeftModel.from_pretrained(backbone, _adapter_dir(directory), adapter_name=ADAPTER_NAME)
        backbone.eval()
    model = PersonalizedRewardModel(backbone, config["backbone"])
    _load_head(model, directory)
    model.saved_dir = str(Path(directory).resolve())
    return model.eval()


def check_adapter_shape(directory: str, r: int, target_modules: tuple[str, ...]) -> None:
    """A saved PersRM whose adapter a new run can go on training: same rank, same layers."""
    config = read_config(directory)
    if not config["adapter"]:
        raise PersonalignError(f"PersRM {directory} has no LoRA adapter to go on training")
    adapter = json.loads((_adapter_dir(directory) / "adapter_config.json").read_text())
    if adapter.get("r") != r or set(adapter.get("target_modules") or ()) != set(target_modules):
        raise PersonalignError(f"PersRM {directory} has rank {adapter.get('r')} on "
                               f"{', '.join(sorted(adapter.get('target_modules') or ()))}; this run trains rank {r} "
                               f"on {', '.join(target_modules)}")


def load_trained_weights(persrm: PersonalizedRewardModel, directory: str) -> None:
    """Copy a saved PersRM's head and adapter weights into `persrm`, whose adapter has the same shape (a training
    run that goes on from it)."""
    from peft import set_peft_model_state_dict

    config = read_config(directory)
    if config["hidden_size"] != persrm.head.in_features:
        raise PersonalignError(f"PersRM {directory} has hidden size {config['hidden_size']}, this backbone "
                               f"{persrm.head.in_features}")
    adapter = load_file(_adapter_dir(directory) / "adapter_model.safetensors", device=str(persrm.head.weight.device))
    result = set_peft_model_state_dict(persrm.backbone, adapter, adapter_name=ADAPTER_NAME)
    if result.unexpected_keys:
        raise PersonalignError(f"PersRM {directory}: adapter weights this run has no place for: "
                               f"{result.unexpected_keys[:3]}")
    _load_head(persrm, directory)


def _adapter_dir(directory: str) -> Path:
    return Path(directory) / ADAPTER_DIR / ADAPTER_NAME


def _load_head(persrm: PersonalizedRewardModel, directory: str) -> None:
    """The saved head's weights, on the device and in the dtype of `persrm`'s head."""
    state = load_file(Path(directory) / HEAD_NAME, device=str(persrm.head.weight.device))
    persrm.head.load_state_dict({k: v.to(persrm.head.weight.dtype) for k, v in state.items()})
