"""A KV-cache layer that keeps spare room, so a decoding step writes its new column in place.

transformers' DynamicLayer appends with torch.cat, copying the whole cache of every layer at every step; at
batch 8 on a CPU that copy cost as much as the unembedding (profiled on SmolLM2, README). Here keys and values are
views into a buffer with room for ROOM more tokens; the buffer is reallocated (one copy) only when it is full.
"""

import torch
from transformers.cache_utils import DynamicLayer

ROOM = 128  # spare token columns per reallocation: one full copy per 128 steps instead of one per step


class RoomyLayer(DynamicLayer):
    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int = ROOM):
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.replace(keys, values, room)

    def replace(self, keys: torch.Tensor, values: torch.Tensor, room: int = ROOM) -> None:
        """Hold these keys and values (copied into a fresh buffer with `room` spare columns)."""
        self._keys = _with_room(keys, room)
        self._values = _with_room(values, room)
        self._set_length(keys.shape[-2])

    def update(self, key_states, value_states, *args, **kwargs):
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if length + new > self._keys.shape[-2]:
            self.replace(self.keys, self.values, new + ROOM)
        self._keys[:, :, length:length + new] = key_states
        self._values[:, :, length:length + new] = value_states
        self._set_length(length + new)
        return self.keys, self.values

    def _set_length(self, length: int) -> None:
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]


def _with_room(t: torch.Tensor, room: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[-2] += room
    buffer = t.new_empty(shape)
    buffer[:, :, :t.shape[-2]] = t
    return buffer
