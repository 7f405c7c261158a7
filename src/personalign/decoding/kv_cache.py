"""A KV-cache layer that keeps spare room, so decoding steps and joining rows write in place.

transformers' DynamicLayer appends with torch.cat, copying the whole cache of every layer at every step; at
batch 8 on a CPU that copy cost as much as the unembedding (profiled on SmolLM2, README). Here keys and values are
views into a buffer with room for ROOM more tokens and ROW_ROOM more rows; the buffer is reallocated (one copy)
only when it is full, so a step writes one column and a row joining the batch writes its own row.
"""

import torch
from transformers.cache_utils import DynamicLayer

ROOM = 128  # spare token columns per reallocation: one full copy per 128 steps instead of one per step
ROW_ROOM = 8  # spare rows: requests joining a running batch write into them instead of copying it


class RoomyLayer(DynamicLayer):
    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int = ROOM):
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.replace(keys, values, room)

    def replace(self, keys: torch.Tensor, values: torch.Tensor, room: int = ROOM, row_room: int = ROW_ROOM) -> None:
        """Hold these keys and values (copied into a fresh buffer with spare columns and rows)."""
        self._keys = _with_room(keys, room, row_room)
        self._values = _with_room(values, room, row_room)
        self._set_shape(keys.shape[0], keys.shape[-2])

    def update(self, key_states, value_states, *args, **kwargs):
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if length + new > self._keys.shape[-2]:
            self.replace(self.keys, self.values, new + ROOM)
        rows = self.keys.shape[0]
        self._keys[:rows, :, length:length + new] = key_states
        self._values[:rows, :, length:length + new] = value_states
        self._set_shape(rows, length + new)
        return self.keys, self.values

    def write_rows(self, rows: list[int], keys: torch.Tensor, values: torch.Tensor) -> None:
        """Put new rows' keys and values [n, heads, w, dim] (w <= the current length) at rows `rows`, right-aligned
        (left-padded with zeros, which their attention mask hides); rows past the current count are added."""
        count, length = max(self.keys.shape[0], max(rows) + 1), self.keys.shape[-2]
        if count > self._keys.shape[0]:  # out of spare rows: one copy into a bigger buffer
            self.replace(self.keys, self.values, self._keys.shape[-2] - length, count - self.keys.shape[0] + ROW_ROOM)
        index = torch.tensor(rows, device=self._keys.device)
        for buffer, new in ((self._keys, keys), (self._values, values)):
            shape = list(new.shape)
            shape[-2] = length - new.shape[-2]
            buffer[index, :, :length] = torch.cat([new.new_zeros(shape), new], -2)
        self._set_shape(count, length)

    def _set_shape(self, rows: int, length: int) -> None:
        self.keys, self.values = self._keys[:rows, :, :length], self._values[:rows, :, :length]


def _with_room(t: torch.Tensor, room: int, row_room: int = 0) -> torch.Tensor:
    shape = list(t.shape)
    shape[0] += row_room
    shape[-2] += room
    buffer = t.new_empty(shape)
    buffer[:t.shape[0], :, :t.shape[-2]] = t
    return buffer
