"""Which rows of one prefill share a leading run of tokens worth computing once.

Rows that run through the same adapter and start with the same tokens (the chat template's system turn, PAD's
principle template, one user's preference) have the same keys and values over those tokens. A prefill can run that
prefix once per adapter and the rest of each row on top of it (the idea behind vLLM's prefix caching, within one
batch). On a CPU a prefill is compute-bound, about linear in row-tokens, while each extra forward costs a fixed
pass over the weights, so a prefix is shared only where it saves enough row-tokens to pay for that pass.
"""

import os
from dataclasses import dataclass

# row-tokens a shared prefix must save to be worth its own forward: on SmolLM2 (2-core CPU) a prefill costs about
# 1.8 ms per row-token and a forward over a few rows about 50 ms
MIN_SAVED_ROW_TOKENS = 64


@dataclass
class SharedPrefixes:
    prefixes: list[tuple[list[int], str | None]]  # each shared prefix's ids and the adapter its rows run through
    group: list[int | None]  # per row: the index of the prefix it starts with (None: it shares none)

    def length(self, row: int) -> int:
        g = self.group[row]
        return 0 if g is None else len(self.prefixes[g][0])


def plan_shared_prefixes(prompts: list[list[int]], adapters: list[str | None]) -> SharedPrefixes:
    """Per adapter, the longest prefix all its rows share (every row keeps at least its last token to compute, so
    each row's last hidden state comes from its own forward), where sharing it saves enough."""
    by_adapter: dict[str | None, list[int]] = {}
    for row, adapter in enumerate(adapters):
        by_adapter.setdefault(adapter, []).append(row)
    prefixes, group = [], [None] * len(prompts)
    for adapter, rows in by_adapter.items():
        common = os.path.commonprefix([prompts[r] for r in rows])
        length = min(len(common), min(len(prompts[r]) for r in rows) - 1)
        if (len(rows) - 1) * length < MIN_SAVED_ROW_TOKENS:
            continue
        for r in rows:
            group[r] = len(prefixes)
        prefixes.append((list(common[:length]), adapter))
    return SharedPrefixes(prefixes, group)
