"""MetaAlign's meta-prompt: golden renderings with and without a system role, preferences as User Info, and the
mistakes a user can make in it (an empty required tier, an unknown tier name)."""

import copy

import pytest

from personalign.errors import PersonalignError
from personalign.meta_prompt import DEFAULT_SYSTEM_INFO, MetaPrompt, has_system_role, render_meta_ids

ZOOKEEPER = "I'm a zookeeper and passionate about understanding animal behavior and physiology."
QUERY = "Should the use of animals be banned in scientific research?"
# Gemma-style: a template that refuses the system role
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}"
             "{% if add_generation_prompt %}<turn>model\n{% endif %}")


@pytest.fixture
def no_system_tokenizer(smol_tokenizer):
    tokenizer = copy.deepcopy(smol_tokenizer)
    tokenizer.chat_template = NO_SYSTEM
    return tokenizer


def text_of(tokenizer, prompt, meta):
    return tokenizer.decode(render_meta_ids(tokenizer, prompt, meta))


def test_golden_rendering_with_a_system_role(smol_tokenizer):
    meta = MetaPrompt(DEFAULT_SYSTEM_INFO, ZOOKEEPER)
    assert has_system_role(smol_tokenizer)
    assert text_of(smol_tokenizer, QUERY, meta) == (
        "<|im_start|>system\nSystem Info: You are an AI assistant.\nUser Info: " + ZOOKEEPER + "<|im_end|>\n"
        "<|im_start|>user\n" + QUERY + "<|im_end|>\n<|im_start|>assistant\n")


def test_golden_rendering_without_a_system_role(no_system_tokenizer):
    meta = MetaPrompt(DEFAULT_SYSTEM_INFO, ZOOKEEPER)
    assert not has_system_role(no_system_tokenizer)
    assert text_of(no_system_tokenizer, QUERY, meta) == (
        "<turn>user\nSystem Info: You are an AI assistant.\nUser Info: " + ZOOKEEPER + "\n\n" + QUERY + "</turn>\n"
        "<turn>model\n")


def test_a_conversation_keeps_its_turns_and_its_system_message_joins_system_info(smol_tokenizer):
    conversation = [{"role": "system", "content": "Never mention prices."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": QUERY}]
    meta = MetaPrompt("You are a shop assistant.", "I am ten years old.")
    assert meta.messages(conversation) == [
        {"role": "system", "content": "System Info: You are a shop assistant. Never mention prices.\n"
                                     "User Info: I am ten years old."},
        *conversation[1:]]
    folded = meta.messages(conversation, system_role=False)
    assert folded[0]["content"].startswith("System Info: You are a shop assistant. Never mention prices.\n")
    assert folded[0]["content"].endswith("\n\nHi") and folded[1:] == conversation[2:]


def test_without_user_info_only_system_info_is_rendered(smol_tokenizer):
    assert MetaPrompt().system_text == "System Info: You are an AI assistant."
    assert "User Info" not in text_of(smol_tokenizer, QUERY, MetaPrompt())


def test_a_preference_becomes_user_info():
    assert MetaPrompt.from_preference("I'm in a hurry").user_info == "I'm in a hurry"
    assert MetaPrompt.from_preference("concise").user_info == \
        "Generate a response that is concise and to the point without being verbose."
    mix = MetaPrompt.from_preference("concise=0.75,friendly=0.25", system_info="Be safe.")
    assert mix.system_info == "Be safe."
    assert mix.user_info == ("Generate a response that is concise and to the point without being verbose. "
                             "(weight 0.75) Generate a response that is friendly, witty, funny, and humorous, like "
                             "a close friend. (weight 0.25)")


def test_tiers_from_json_lines_and_their_mistakes():
    assert MetaPrompt.from_mapping({"user_info": "I teach literature"}) == \
        MetaPrompt(DEFAULT_SYSTEM_INFO, "I teach literature")
    with pytest.raises(PersonalignError, match="unknown tier 'user'; the tiers are system_info, user_info"):
        MetaPrompt.from_mapping({"user": "x"}, where="in.jsonl:3")
    with pytest.raises(PersonalignError, match="system_info is empty"):
        MetaPrompt("  ", "I am a nurse")
    with pytest.raises(PersonalignError, match="user_info must be text"):
        MetaPrompt.from_mapping({"user_info": 5})
    with pytest.raises(PersonalignError, match="give the tiers as an object"):
        MetaPrompt.from_mapping(["system_info"])
