"""A batch of token rows decoded through one model with one KV cache, rows joining and leaving between steps.

Rows are left-padded: each row's attention mask marks its real tokens and position ids count only those, so rows
of different lengths (and rows that joined later) decode together. A row can be marked `adapter` to run through
the PersRM's LoRA adapter while the others use the bare weights, in the same forward (row_lora.py).
The runner returns final hidden states; turning them into logits (with or without the PersRM head) is the
caller's choice, so one row can serve both the base model and a head-only PersRM. Rows name the adapter they run
through (None: the bare weights), so one forward can carry base rows, PersRM rows and MetaAlign policy rows.

Joining and leaving copy no cache: a caller's rows (logical) live in physical cache rows (`slots`). A row that
leaves is only forgotten; its physical row keeps decoding (its output unread) until a new row takes its place or
the dead outnumber the living (or the columns no living row reads outnumber the rest), when one compaction copies
the living. A row that joins is prefilled alone and
written into a dead or spare physical row, left-padded to the batch's width; only a prompt longer than the batch's
width makes the whole cache wider (one copy).
"""

from contextlib import nullcontext

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from ..errors import PersonalignError
from ..padding import left_padded
from ..reward_model import logits_at
from .kv_cache import RoomyLayer
from .row_lora import RowLoRA
from .shared_prefix import plan_shared_prefixes
from .small_rows import SmallRowLinears


class RowRunner:
    def __init__(self, model, adapters: tuple[str, ...] = ()):
        """`model`: a causal LM, or a peft model carrying the LoRA adapters `adapters` that some rows use."""
        self.model = model
        self.adapters = tuple(adapters)
        self.row_lora = RowLoRA(model, self.adapters) if self.adapters else None
        inner = model.get_base_model() if self.adapters else model
        if getattr(inner.config, "final_logit_softcapping", None):
            # logits here are unembedding(decoder(x)); a model that transforms them further would be scored wrongly
            raise PersonalignError(f"{inner.config.model_type} models (final logit soft-capping) are not supported yet")
        self.decoder = inner.get_decoder()
        self.small_rows = SmallRowLinears(self.decoder)
        self.lm_head = inner.get_output_embeddings()  # None for a sequence-classification model
        self.device = next(self.decoder.parameters()).device
        self.cache = None
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=self.device)  # per physical row
        self.adapter_rows: list[str | None] = []  # per physical row
        self.slots: list[int] = []  # the physical row of each logical row
        self.copies = 0  # whole-cache copies made by joins, leaves and compactions (benchmarks/join_leave.py)

    @property
    def num_rows(self) -> int:
        return len(self.slots)

    @torch.inference_mode()
    def add(self, prompts: list[list[int]], adapter: list[str | None]) -> torch.Tensor:
        """Prefill new rows (appended after the existing ones); returns their last hidden states [n, d].

        Rows of one adapter that start alike run their common prefix once (shared_prefix.py): the prefix's keys
        and values are copied to each row, then each row's remaining tokens are prefilled on top of them."""
        plan = plan_shared_prefixes(prompts, adapter)
        past, past_mask = None, torch.zeros(len(prompts), 0, dtype=torch.long, device=self.device)
        if plan.prefixes:
            ids, mask = left_padded([ids for ids, _ in plan.prefixes], 0, self.device)
            _, prefix_cache = self._forward(ids, mask, _positions(mask), None, [a for _, a in plan.prefixes])
            _check_cache(prefix_cache)
            source = torch.tensor([g or 0 for g in plan.group], device=self.device)  # rows sharing none: masked
            past = DynamicCache()
            past.layers = [_layer(layer.keys[source], layer.values[source]) for layer in prefix_cache.layers]
            shares = torch.tensor([g is not None for g in plan.group], device=self.device)
            past_mask = mask[source] * shares[:, None]
        ids, mask = left_padded([p[plan.length(i):] for i, p in enumerate(prompts)], 0, self.device)
        positions = _positions(mask) + past_mask.sum(1, keepdim=True)
        mask = torch.cat([past_mask, mask], 1)
        hidden, cache = self._forward(ids, mask, positions, past, adapter)
        self._merge(cache, mask, adapter)
        return hidden

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token to every row; returns the new last hidden states [rows, d]."""
        slots = torch.tensor(self.slots, device=self.device)
        physical = torch.zeros(self.mask.shape[0], dtype=torch.long, device=self.device)  # dead rows read id 0
        physical[slots] = tokens
        positions = self.mask.sum(1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(positions)], 1)
        hidden, self.cache = self._forward(physical[:, None], self.mask, positions, self.cache, self.adapter_rows)
        return hidden[slots]

    @torch.inference_mode()
    def peek(self, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states [n, k, d] of k alternative next tokens [n, k] for `rows`, the cache left as it was.

        The prefix is not re-encoded: each alternative reads a copy of its row's cache (ARGS's candidates).
        """
        n, k = tokens.shape
        index = torch.tensor(self.slots, device=self.device)[rows].repeat_interleave(k)
        cache = DynamicCache()
        cache.layers = [RoomyLayer(layer.keys[index], layer.values[index], room=1) for layer in self.cache.layers]
        mask = self.mask[index]
        positions = mask.sum(1, keepdim=True)
        mask = torch.cat([mask, torch.ones_like(positions)], 1)
        hidden, _ = self._forward(tokens.reshape(-1, 1), mask, positions, cache, [self.adapter_rows[r] for r in
                                                                                   index.tolist()])
        return hidden.view(n, k, -1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Unembed hidden states [n, d] -> [n, vocab]."""
        # U @ h^T rather than h @ U^T: with a 49k-row U and a few rows, MKL's sgemm packs U^T first, which made
        # the batch-8 unembedding take twice as long as batch 1 on a CPU (27.5 vs 14.2 ms, SmolLM2)
        logits = (self.lm_head.weight @ hidden.T).T
        return logits if self.lm_head.bias is None else logits + self.lm_head.bias

    def candidate_logits(self, hidden: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """The model's own logits at candidate ids only: [n, K] from hidden [n, d] and ids [n, K]."""
        return logits_at(self.lm_head, hidden, cand)

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (in that order). The others' physical rows stay until reused or compacted."""
        self.slots = [self.slots[r] for r in rows]
        if not rows:
            self.cache, self.adapter_rows = None, []
            self.mask = self.mask[:0, :0]
        elif 2 * len(self.slots) < self.mask.shape[0] or 2 * self._unread_columns() > self.mask.shape[1]:
            self._compact()  # more dead rows than living, or more columns no living row reads than columns read
        else:  # dead rows run through whatever the living use, so that they do not force per-row adapters
            for dead in set(range(self.mask.shape[0])) - set(self.slots):
                self.adapter_rows[dead] = self.adapter_rows[self.slots[0]]

    def _unread_columns(self) -> int:
        """Leading cache columns that are padding for every living row."""
        return int((self.mask[torch.tensor(self.slots, device=self.device)].sum(0) > 0).nonzero()[0])

    def _compact(self, width: int = 0) -> None:
        """Copy the living rows, in logical order, into a fresh cache without the columns none of them attends to,
        left-padded to `width` columns when it is wider."""
        index = torch.tensor(self.slots, device=self.device)
        mask = self.mask[index]
        start = self._unread_columns()
        missing = max(width - (mask.shape[1] - start), 0)
        self.mask = torch.nn.functional.pad(mask[:, start:], (missing, 0))
        for layer in self.cache.layers:
            layer.replace(*(torch.nn.functional.pad(t[index, :, start:], (0, 0, missing, 0))
                            for t in (layer.keys, layer.values)))
        self.adapter_rows = [self.adapter_rows[r] for r in self.slots]
        self.slots = list(range(len(self.slots)))
        self.copies += 1

    def _forward(self, ids, mask, positions, cache, adapter: list[str | None]):
        with self._adapter_context(adapter), self.small_rows.rows(ids.numel()):
            out = self.decoder(input_ids=ids, attention_mask=mask, position_ids=positions,
                               cache=cache, use_cache=True)
        return out.last_hidden_state[:, -1], out.cache

    def _adapter_context(self, adapter: list[str | None]):
        unknown = set(adapter) - {None, *self.adapters}
        if unknown:
            raise PersonalignError(f"no adapter {sorted(unknown)[0]!r} on this model (it has: "
                                   f"{', '.join(self.adapters) or 'none'})")
        if not self.adapters:
            return nullcontext()
        if not any(adapter):
            return self.row_lora.bare()
        # even where every row uses the adapter peft has active: its own LoRA forward rounds otherwise, and a
        # request's answer would then hang on which other adapters the model carries
        return self.row_lora.rows(adapter)

    def _merge(self, cache, mask, adapter: list[str | None]) -> None:
        """Add freshly prefilled rows to the running batch: in place when they are no wider than it."""
        _check_cache(cache)
        if self.cache is None:
            cache.layers = [RoomyLayer(layer.keys, layer.values) for layer in cache.layers]
            self.cache, self.mask, self.adapter_rows = cache, mask, list(adapter)
            self.slots = list(range(mask.shape[0]))
            return
        if mask.shape[1] > self.mask.shape[1]:  # wider than the batch: left-pad every living row (one copy)
            self._compact(mask.shape[1])
        rows = self.mask.shape[0]
        free = sorted(set(range(rows)) - set(self.slots))[:len(adapter)]
        targets = free + list(range(rows, rows + len(adapter) - len(free)))
        for old, new in zip(self.cache.layers, cache.layers):
            old.write_rows(targets, new.keys, new.values)
        grown = torch.zeros(len(targets) - len(free), self.mask.shape[1], dtype=self.mask.dtype, device=self.device)
        self.mask = torch.cat([self.mask, grown])  # the mask is small: ids, not keys and values
        self.mask[targets] = torch.nn.functional.pad(mask, (self.mask.shape[1] - mask.shape[1], 0))
        self.adapter_rows += [None] * len(grown)
        for target, name in zip(targets, adapter):
            self.adapter_rows[target] = name
        self.slots += targets


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: real tokens count from 0 (padding reads 0)."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def _check_cache(cache) -> None:
    if any(type(layer) is not DynamicLayer for layer in cache.layers):
        raise PersonalignError("this model's cache (sliding-window or hybrid attention) is not supported yet")


def _layer(keys: torch.Tensor, values: torch.Tensor) -> DynamicLayer:
    """A DynamicLayer already holding `keys` and `values`, for a forward to extend."""
    layer = DynamicLayer()
    layer.lazy_initialization(keys, values)
    layer.keys, layer.values = keys, values
    return layer
