"""Turning generated ids into text as they arrive: streaming deltas, stop strings, never half a character.

Decoding incrementally (a window of recent ids, as text-generation-inference does) keeps each step O(1) and
handles tokenizers whose pieces only make sense together. Text that could be the start of a stop string is held
back until it is known not to be one.
"""


class TextTracker:
    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.text = ""  # all text decoded so far
        self.emitted = 0  # how much of it was handed out as deltas
        self._prefix_offset = 0
        self._read_offset = 0
        self.stopped = False

    def add(self, token_id: int) -> str:
        """Add a generated id; returns the new text that is safe to show (may be empty)."""
        self.ids.append(token_id)
        prefix = self._decode(self.ids[self._prefix_offset:self._read_offset])
        full = self._decode(self.ids[self._prefix_offset:])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.text += full[len(prefix):]
            self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
        self._check_stop()
        return self._release(final=self.stopped)

    def finish(self) -> str:
        """Everything not yet handed out (called when generation ends)."""
        return self._release(final=True)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _check_stop(self) -> None:
        longest = max((len(s) for s in self.stop), default=0)
        window_start = max(0, self.emitted - longest)
        hits = [i for i in (self.text.find(s, window_start) for s in self.stop) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            self.stopped = True

    def _release(self, final: bool) -> str:
        end = len(self.text) if final else len(self.text) - self._held_back()
        delta = self.text[self.emitted:end]
        self.emitted = max(self.emitted, end)
        return delta

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is the start of some stop string."""
        held = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), held, -1):
                if self.text.endswith(s[:n]):
                    held = n
                    break
        return held
