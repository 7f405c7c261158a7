"""Personalized Soups: one LoRA policy per preference dimension, merged by weighted parameter averaging.

For a preference with dimensions d_i and weights w_i (uniform for a plain list), every LoRA tensor of the soup is
sum_i w_i * theta_i, as P-SOUPS merges its policies (A and B matrices averaged separately, not their products).
The soup answers the bare prompt: the merged weights carry the preference. The adapters must share one LoRA
configuration (rank, target modules). The soup lives on a private copy of the base model, so the other methods'
engine keeps the plain weights.
"""

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..decoding.engine import Engine
from ..errors import PersonalignError
from ..preferences import Preference

SOUP = "soup"


class SoupKitchen:
    def __init__(self, base_model, tokenizer, adapters: dict[str, str]):
        """`base_model`: the bare base (copied); `adapters`: catalog dimension name -> a peft LoRA adapter
        directory."""
        from peft import PeftModel
        self.paths = {name: Path(path) for name, path in adapters.items()}
        if not self.paths:
            raise PersonalignError("soups: give an adapter directory per dimension, e.g. soups: {concise: DIR}")
        configs = {}
        for name, path in self.paths.items():
            config_file = path / "adapter_config.json"
            if not config_file.is_file():
                raise PersonalignError(f"soups: {name}: no peft adapter at {path} (adapter_config.json missing)")
            config = json.loads(config_file.read_text())
            configs[name] = (config.get("r"), sorted(config.get("target_modules") or []))
        if len(set(map(str, configs.values()))) > 1:
            raise PersonalignError(f"soups: the adapters differ in rank or target modules ({configs}); "
                                   "averaging needs one LoRA configuration")
        first = next(iter(self.paths.values()))
        self.model = PeftModel.from_pretrained(copy.deepcopy(base_model), str(first), adapter_name=SOUP).eval()
        self.engine = Engine(self.model, tokenizer)
        self._states: dict[str, dict] = {}

    def check(self, preference: Preference) -> None:
        for name, _ in preference.dimensions:
            if name not in self.paths:
                raise PersonalignError(f"soups: no adapter for {name or preference.label!r}; adapters are given for "
                                       f"{', '.join(self.paths)}")

    def engine_for(self, preference: Preference) -> Engine:
        """The engine, its soup set to this preference's weighted average."""
        from peft import set_peft_model_state_dict
        self.check(preference)
        states = [(self._state(name), weight) for name, weight in preference.dimensions]
        soup = {key: sum(weight * state[key] for state, weight in states) for key in states[0][0]}
        set_peft_model_state_dict(self.model, soup, adapter_name=SOUP)
        return self.engine

    def _state(self, name: str) -> dict[str, torch.Tensor]:
        if name not in self._states:
            path = self.paths[name]
            file = path / "adapter_model.safetensors"
            self._states[name] = load_file(str(file)) if file.is_file() else \
                torch.load(path / "adapter_model.bin", map_location="cpu")
        return self._states[name]
