"""RowRunner: rows join and leave a running batch without copying its cache, and decode exactly as alone."""

import torch

from personalign.decoding.runner import RowRunner
from personalign.decoding.shared_prefix import MIN_SAVED_ROW_TOKENS, plan_shared_prefixes
from test_row_lora import two_adapters
from tiny import tiny_llama

PROMPTS = [[5, 17, 230, 44, 9], [81, 3], [7, 7, 7, 1200, 64, 31, 8, 990], [450, 12, 19]]


def alone(model, prompt, tokens):
    """Last hidden states of `prompt` then each of `tokens`, through a runner of its own."""
    runner = RowRunner(model)
    states = [runner.add([prompt], [None])[0]]
    for token in tokens:
        states.append(runner.step(torch.tensor([token]))[0])
    return torch.stack(states)


def test_rows_join_into_free_places_and_leave_without_copies():
    model = tiny_llama(0)
    runner = RowRunner(model)
    feed = {i: [100 + 7 * i + s for s in range(12)] for i in range(len(PROMPTS))}
    seen = {2: [runner.add([PROMPTS[2]], [None])[0]]}  # prompt index -> its hidden states; the widest first
    rows = [2]  # logical row -> prompt index
    for step in range(6):
        if step == 1:  # two join a running batch: they take spare physical rows
            for i, state in zip((1, 3), runner.add([PROMPTS[1], PROMPTS[3]], [None, None])):
                seen[i] = [state]
            rows += [1, 3]
        if step == 3:  # one leaves; its physical row stays, unread
            runner.keep([0, 2])
            rows.remove(1)
        if step == 4:  # a newcomer takes the dead row's place
            seen[0] = [runner.add([PROMPTS[0]], [None])[0]]
            rows.append(0)
        tokens = [feed[i][len(seen[i]) - 1] for i in rows]
        for i, state in zip(rows, runner.step(torch.tensor(tokens))):
            seen[i].append(state)
    assert runner.copies == 0 and runner.mask.shape[0] == 3 and runner.num_rows == 3
    for i, states in seen.items():
        torch.testing.assert_close(torch.stack(states), alone(model, PROMPTS[i], feed[i][:len(states) - 1]),
                                   atol=1e-4, rtol=1e-4)
    runner.keep([2])  # two dead of three: one compaction, the living row first and alone
    assert runner.copies == 1 and runner.mask.shape[0] == 1 and runner.slots == [0]
    state = runner.step(torch.tensor([feed[0][len(seen[0]) - 1]]))[0]
    torch.testing.assert_close(state, alone(model, PROMPTS[0], feed[0][:len(seen[0])])[-1], atol=1e-4, rtol=1e-4)


def test_a_prompt_wider_than_the_batch_widens_it_once():
    model = tiny_llama(0)
    runner = RowRunner(model)
    first = runner.add([PROMPTS[1]], [None])[0]
    second = runner.add([PROMPTS[2]], [None])[0]
    assert runner.copies == 1
    states = runner.step(torch.tensor([11, 12]))
    torch.testing.assert_close(torch.stack([first, states[0]]), alone(model, PROMPTS[1], [11]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.stack([second, states[1]]), alone(model, PROMPTS[2], [12]), atol=1e-4,
                               rtol=1e-4)


def test_columns_no_living_row_reads_are_dropped_once_they_are_most():
    model = tiny_llama(0)
    runner = RowRunner(model)
    runner.add([PROMPTS[2], PROMPTS[1]], [None, None])  # 8 and 2 tokens: the short row has 6 columns of padding
    runner.step(torch.tensor([11, 12]))
    runner.keep([1])  # the long row leaves: 6 of 9 columns are now read by no one
    assert runner.copies == 1 and runner.mask.shape == (1, 3)
    state = runner.step(torch.tensor([13]))[0]
    torch.testing.assert_close(state, alone(model, PROMPTS[1], [12, 13])[-1], atol=1e-4, rtol=1e-4)


def test_rows_of_one_adapter_share_their_common_prefix_where_it_saves_enough():
    head = list(range(100, 140))  # 40 tokens: 2 more rows sharing them save 80 row-tokens
    prompts = [head + [5, 6], head + [7], head, [9] + head]
    plan = plan_shared_prefixes(prompts, ["a", "a", "a", None])
    assert plan.prefixes == [(head[:-1], "a")]  # `head` alone keeps its last token to compute
    assert plan.group == [0, 0, 0, None] and [plan.length(i) for i in range(4)] == [39, 39, 39, 0]
    short = [head[:MIN_SAVED_ROW_TOKENS // 2] + [5], head[:MIN_SAVED_ROW_TOKENS // 2] + [6]]
    assert plan_shared_prefixes(short, [None, None]).prefixes == []  # one saved row of 32 tokens: not worth it
    assert plan_shared_prefixes([head + [5], head + [6]], ["a", None]).prefixes == []  # adapters differ


def test_a_prefill_sharing_prefixes_decodes_each_row_as_alone():
    model = two_adapters()
    head = [int(t) for t in torch.randint(3, 1000, (40,), generator=torch.Generator().manual_seed(1))]
    prompts = [head + [5, 17, 230], head + [81], [7, 7] + head, head + [450, 12], head + [3, 3]]
    adapters = ["a", "a", "a", None, "b"]  # rows 3 and 4 are their adapters' only rows: they share nothing
    assert plan_shared_prefixes(prompts, adapters).group == [None] * 5  # row 2 does not start with `head`
    prompts[2] = head + [7, 7]  # now rows 0-2 share `head` through "a"
    assert plan_shared_prefixes(prompts, adapters).group == [0, 0, 0, None, None]
    runner = RowRunner(model, ("a", "b"))
    states = [runner.add(prompts, adapters)]
    for step in range(3):
        states.append(runner.step(torch.tensor([11 + step] * len(prompts))))
    for i, (prompt, adapter) in enumerate(zip(prompts, adapters)):
        own = RowRunner(model, ("a", "b"))
        expected = [own.add([prompt], [adapter])[0]] + [own.step(torch.tensor([11 + s]))[0] for s in range(3)]
        torch.testing.assert_close(torch.stack([s[i] for s in states]), torch.stack(expected), atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_rows_of_one_adapter_compute_alike_whichever_adapter_peft_has_active():
    """A MetaAlign policy's rows decode the same whether or not the engine also holds the PersRM's adapter (peft's
    own LoRA forward, taken where every row used the active adapter, rounds otherwise: greedy answers on SmolLM2
    parted after a dozen tokens)."""
    model = two_adapters()
    states = []
    for active in ("a", "b"):
        model.set_adapter(active)
        runner = RowRunner(model, ("a", "b"))
        hidden = [runner.add(PROMPTS[:2], ["a", "a"])]
        hidden += [runner.step(torch.tensor([token, token + 1])) for token in (40, 41, 42)]
        states.append(torch.stack(hidden))
    assert torch.equal(*states)
