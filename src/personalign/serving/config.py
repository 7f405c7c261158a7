"""The server's settings, one dataclass: `personalign serve` builds its flags from these fields (flag_help)."""

import hmac
import ipaddress
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import PersonalignError
from ..flag_help import flag_help
from ..validation import check_number, read_nonblank_lines

LOOPBACK_NAMES = ("localhost",)
FEEDBACK_FEATURES = ("auto", "persrm", "offline")
BACKENDS = ("transformers", "vllm")


@dataclass
class ServerConfig:
    host: str = field(default="127.0.0.1", metadata=flag_help("address to listen on (without an API key: loopback "
                                                              "only)"))
    port: int = field(default=8000, metadata=flag_help("port to listen on"))
    api_key: str | None = field(default=None, metadata=flag_help(
        "require 'Authorization: Bearer KEY' on every route but /health"))
    api_key_file: str | None = field(default=None, metadata=flag_help("a file of accepted keys, one per line"))
    profiles: str | None = field(default=None, metadata=flag_help(
        "a profile database (`personalign users add`): its users' keys are accepted, and each request decodes "
        "with its user's saved preference unless it names one"))
    feedback_features: str = field(default="auto", metadata=flag_help(
        "what users' choices are learned from: 'persrm' (the PersRM's summed reward of each answer under each "
        "P-SOUPS dimension), 'offline' (the offline judge's scores) or 'auto' (persrm when the PersRM is "
        "trained)", choices=FEEDBACK_FEATURES))
    served_model_name: str | None = field(default=None, metadata=flag_help(
        "the model name clients send and /v1/models lists (default: the base model's directory name)"))
    max_running: int = field(default=32, metadata=flag_help("most requests decoded together in one batch"))
    max_waiting: int = field(default=256, metadata=flag_help("most requests waiting for a place; more get 429"))
    max_prefill_tokens: int = field(default=512, metadata=flag_help(
        "most prompt tokens prefilled between two steps (bounds how long a joining prompt stalls the others)"))
    max_prompt_tokens: int = field(default=4096, metadata=flag_help("longest prompt accepted, in tokens, "
                                                                    "templates included"))
    max_tokens: int = field(default=512, metadata=flag_help("most tokens one answer may ask for (the default for "
                                                            "requests that name none)"))
    max_body_bytes: int = field(default=1_000_000, metadata=flag_help("largest request body accepted"))
    timeout: float = field(default=600.0, metadata=flag_help("seconds a request may take before it is ended"))
    backend: str = field(default="transformers", metadata=flag_help(
        "what decodes: personalign's own engine, or vLLM (base, prompt, meta-prompting and PAD's released rule on "
        "one preference; its environment from scripts/setup-vllm.sh)", choices=BACKENDS))
    tensor_parallel_size: int = field(default=1, metadata=flag_help("vLLM backend: GPUs each model is split over"))
    pipeline_parallel_size: int = field(default=1, metadata=flag_help(
        "vLLM backend: pipeline stages (a PersRM with its own backbone needs 1)"))
    vllm_python: str = field(default=".venv-vllm/bin/python", metadata=flag_help(
        "vLLM backend: the Python of vLLM's environment"))
    vllm_args: str = field(default="", metadata=flag_help(
        "vLLM backend: more arguments for vLLM's server, e.g. '--enforce-eager --kv-cache-memory-bytes 1G'"))

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is int:
                check_number(f.name, value, minimum=1, whole=True)
        check_number("port", self.port, maximum=65535, whole=True)
        check_number("timeout", self.timeout, above=0)
        if self.feedback_features not in FEEDBACK_FEATURES:
            raise PersonalignError(f"unknown feedback features {self.feedback_features!r}; choose one of "
                                   f"{', '.join(FEEDBACK_FEATURES)}")
        if self.backend not in BACKENDS:
            raise PersonalignError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.api_key is not None and not self.api_key.strip():
            raise PersonalignError("--api-key is empty")

    def keys(self) -> list[str]:
        """The accepted API keys (none: no authentication, loopback only)."""
        keys = [self.api_key] if self.api_key else []
        if self.api_key_file:
            keys += read_nonblank_lines(Path(self.api_key_file), "API key file")
            if len(keys) == (1 if self.api_key else 0):
                raise PersonalignError(f"API key file {self.api_key_file} holds no keys")
        return keys

    def check_exposure(self) -> None:
        """Deny by default: without a key the server may listen on loopback only."""
        if not self.keys() and self.profiles is None and not is_loopback(self.host):
            raise PersonalignError(f"refusing to listen on {self.host} without an API key: anyone who reaches it "
                                   "could use it; pass --api-key (or --api-key-file, --profiles), or listen on "
                                   "127.0.0.1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_matches(given: str, keys: list[str]) -> bool:
    """Compare in constant time, against every key, so timing says nothing about which key nearly matched."""
    return any([hmac.compare_digest(given.encode(), key.encode()) for key in keys])
