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
    seen = {0: [runner.add([PROMPTS[2]], [None])[0]]}  # the widest prompt first: later ones fit its width
    rows = [0]  # logical row -> prompt index
    for step in range(6):
        if step == 1:  # two join a running batch: they take spare physical rows
            seen.update({1: [], 3: []})
            for i, state in zip((1, 3), runner.add([PROMPTS[1], PROMPTS[3]], [None, None])):
                seen[i].append(state)
            rows += [1, 3]
        if step == 3:  # the first leaves; its physical row stays, unread
            runner.keep([1, 2])
            rows = rows[1:]
        if step == 4:  # a newcomer takes the dead row's place
            seen[0] = [runner.add([PROMPTS[0]], [None])[0]]
            rows.append(0)
        tokens = [feed[i][len(seen[i]) - 1] for i in rows]
        for i, state in zip(rows, runner.step(torch.tensor(tokens))):
            seen[i].append(state)
    assert runner.copies == 0 and runner.mask.shape[0] == 3 and runner.num_rows == 3
    for i in (0, 1, 3):
        expected = alone(model, PROMPTS[i], feed[i][:len(seen[i]) - 1])
        torch.testing.assert_close(torch.stack(seen[i]), expected, atol=1e-4, rtol=1e-4)
    runner.keep([2])  # two dead of three: one compaction, the living row first and alone
    assert runner.copies == 1 and runner.mask.shape[0] == 1 and runner.slots == [0]
    state = runner.step(torch.tensor([feed[0][len(seen[0]) - 1]]))[0]
    expected = alone(model, PROMPTS[0], feed[0][:len(seen[0])])[-1]
    torch.testing.assert_close(state, expected, atol=1e-4, rtol=1e-4)


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
