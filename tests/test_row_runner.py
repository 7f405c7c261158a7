"""RowRunner: rows join and leave a running batch without copying its cache, and decode exactly as alone."""

import torch

from personalign.decoding.runner import RowRunner
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
