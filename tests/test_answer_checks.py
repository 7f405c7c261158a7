from personalign.answer_checks import degenerate, runs_together


def test_words_joined_by_commas_are_degenerate_but_numbers_and_lists_are_not():
    babble = "Vaccines are like special medicines, they help us I,m,a,vaccine,I,m,wits and more."
    assert runs_together(babble) and degenerate(babble)
    for fine in ("The city has 1,250,000 people.", "Apples, pears, plums, figs and grapes are fruit.",
                 "Use a,b for the pair."):
        assert not runs_together(fine) and not degenerate(fine)
