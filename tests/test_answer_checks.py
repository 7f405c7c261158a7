from personalign.answer_checks import degenerate, echoes_template, runs_together


def test_words_joined_by_commas_are_degenerate_but_numbers_and_lists_are_not():
    babble = "Vaccines are like special medicines, they help us I,m,a,vaccine,I,m,wits and more."
    assert runs_together(babble) and degenerate(babble)
    for fine in ("The city has 1,250,000 people.", "Apples, pears, plums, figs and grapes are fruit.",
                 "Use a,b for the pair."):
        assert not runs_together(fine) and not degenerate(fine)


def test_template_echoes_are_found_with_their_tags_bent_but_answers_that_mention_tasks_are_not():
    for echo in ("[Instructions]\nThe answer is: [Question] How did Adam Smith's theories ...",
                 "[Guided Instructions] Please go ahead and respond to the above question.",
                 "Sure. [guideline] be kind.", "To generate a response that is friendly, witty, funny, you ...",
                 "[Guidelines] Your task is to be brief."):
        assert echoes_template(echo) and degenerate(echo), echo
    for fine in ("Your first task: preheat the oven. The instructions on the box say 180 degrees.",
                 "Follow the principles of good design [1].", "A list: [a] apples, [b] pears."):
        assert not echoes_template(fine), fine
