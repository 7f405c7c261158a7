"""The preference catalog against its sources, preference parsing, PAD prompt rendering and request validation."""

import json
import math
from pathlib import Path

import pytest

from personalign import catalog
from personalign.decoding.request import GenerationRequest
from personalign.errors import PersonalignError
from personalign.preferences import Preference
from personalign.prompts import render_ids

SOURCES = Path(__file__).parents[2] / "shared/data/preference_dimension_texts.json"

PAD_TEMPLATE = ("[Guidelines] Your task is to generate response by considering the following principle. "
                "[Principles] concise-text [Instruction] question")


@pytest.fixture(scope="module")
def sources() -> dict:
    if not SOURCES.is_file():
        pytest.skip(f"source texts not found at {SOURCES}: the shared data checkout is absent")
    return json.loads(SOURCES.read_text())


# ---- the catalog against the published texts -------------------------------------------------------------------

def test_psoups_profiles_match_the_source_by_id(sources):
    profiles = sources["psoups"]["profiles"]
    assert sorted(profiles) == ["P1A", "P1B", "P2A", "P2B", "P3A", "P3B"]
    for pid, text in profiles.items():
        dim = catalog.lookup(pid)
        assert dim is not None, pid
        assert dim.text == text, pid
        assert dim.source == "P-SOUPS"


def test_amulet_preferences_match_the_source(sources):
    preferences = sources["amulet"]["preferences"]
    assert len(preferences) == 8
    for name, text in preferences.items():
        dim = catalog.lookup("amulet-concise" if name == "concise" else name)
        assert dim is not None, name
        assert dim.text == text, name
        assert dim.source == "Amulet"


def test_pad_principles_are_the_bare_words(sources):
    used = sources["pad"]["principles_used"]
    for word in ("helpfulness", "harmless", "humor"):
        assert word in used
        dim = catalog.lookup(word)
        assert dim.name == word and dim.text == word and dim.source == "PAD"


def test_pad_template_matches_the_source(sources):
    from personalign.prompts import PAD_PRINCIPLE_TEMPLATE

    released = sources["pad"]["system_prompt_template"].replace("{principles}", "{principle}")
    assert PAD_PRINCIPLE_TEMPLATE.startswith(released) and PAD_PRINCIPLE_TEMPLATE == released + "{instruction}"


@pytest.mark.parametrize("name, same_as", [
    ("concise", "P2A"), ("expert", "P1B"), ("CONCISE", "p2a"), ("Expert", "phd"), ("  elementary ", "P1A"),
    ("humour", "humor"), ("3C", "sassy"),
])
def test_names_and_ids_resolve_to_the_same_dimension(name, same_as):
    assert catalog.lookup(name) is not None
    assert catalog.lookup(name) is catalog.lookup(same_as)


def test_unknown_name_is_none_and_names_are_listed():
    assert catalog.lookup("nosuch") is None
    names = catalog.known_names()
    assert "concise" in names and "amulet-concise" in names and len(names) == len(set(names))


# ---- Preference ------------------------------------------------------------------------------------------------

def test_from_dims_normalises_weights_and_keeps_order():
    pref = Preference.from_dims("concise=0.7,friendly=0.3")
    assert pref.texts == [catalog.lookup("P2A").text, catalog.lookup("P3A").text]
    assert pref.weights == pytest.approx([0.7, 0.3])
    assert math.isclose(sum(pref.weights), 1.0)
    unnormalised = Preference.from_dims("friendly=6, concise=2")
    assert unnormalised.texts == [catalog.lookup("friendly").text, catalog.lookup("concise").text]
    assert unnormalised.weights == pytest.approx([0.75, 0.25])


def test_from_dims_without_weights_is_equal_weights():
    pref = Preference.from_dims("concise,friendly")
    assert pref.weights == pytest.approx([0.5, 0.5])
    assert Preference.from_dims({"expert": 1.0, "P2A": 3.0}).weights == pytest.approx([0.25, 0.75])


def test_unknown_dimension_error_lists_known_names():
    with pytest.raises(PersonalignError, match="unknown preference dimension 'nosuch'") as info:
        Preference.from_dims("concise=0.5,nosuch=0.5")
    for name in catalog.known_names():
        assert name in str(info.value)


@pytest.mark.parametrize("spec, message", [
    ("concise=-1", "positive"),
    ("concise=0", "positive"),
    ("concise=0.5,friendly=0", "positive"),
    ("concise=nan", "positive"),
    ("concise=inf", "positive"),
    ("concise=0.5,P2A=0.5", "twice"),
    ("concise,CONCISE", "twice"),
    ("concise=abc", "bad weight"),
    ("", "no dimensions"),
    (" , ", "no dimensions"),
])
def test_bad_dims_are_errors(spec, message):
    with pytest.raises(PersonalignError, match=message):
        Preference.from_dims(spec)


def test_bad_mapping_weight_is_an_error():
    with pytest.raises(PersonalignError, match="positive"):
        Preference.from_dims({"concise": float("nan")})


def test_parse_catalog_names_become_dimensions():
    assert Preference.parse("concise").components == ((catalog.lookup("concise").text, 1.0),)
    assert Preference.parse("concise").label == "concise"
    mix = Preference.parse("concise=0.7,friendly=0.3")
    assert mix == Preference.from_dims("concise=0.7,friendly=0.3") and len(mix.components) == 2
    with pytest.raises(PersonalignError, match="bad weight"):
        Preference.parse("concise=abc")


@pytest.mark.parametrize("text", ["I'm a beginner, keep it short", "Answer like a pirate", "concise, please"])
def test_parse_free_text_is_one_component_with_that_text(text):
    pref = Preference.parse(text)
    assert pref.components == ((text, 1.0),)
    assert pref.text == text


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_preference_text_is_an_error(text):
    with pytest.raises(PersonalignError, match="empty"):
        Preference.from_text(text)
    with pytest.raises(PersonalignError):
        Preference.parse(text)


def test_parse_none_and_passthrough():
    assert Preference.parse(None).is_empty and Preference.parse(None).text is None
    pref = Preference.from_text("x")
    assert Preference.parse(pref) is pref


def test_text_joins_components_with_and():
    pref = Preference.from_dims("harmless,helpfulness,humor")
    assert pref.text == "harmless and helpfulness and humor"
    assert Preference.from_dims("concise=1,friendly=2").text == (
        catalog.lookup("concise").text + " and " + catalog.lookup("friendly").text)


# ---- prompt rendering ------------------------------------------------------------------------------------------

def test_render_ids_puts_pad_template_in_the_user_turn(smol_tokenizer):
    text = smol_tokenizer.decode(render_ids(smol_tokenizer, "question", "concise-text"))
    assert f"<|im_start|>user\n{PAD_TEMPLATE}<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert text.count(PAD_TEMPLATE) == 1


def test_render_ids_without_principle_is_the_bare_instruction(smol_tokenizer):
    text = smol_tokenizer.decode(render_ids(smol_tokenizer, "question", None))
    assert "<|im_start|>user\nquestion<|im_end|>\n" in text
    assert "[Guidelines]" not in text and "[Principles]" not in text
    assert text.endswith("<|im_start|>assistant\n")


def test_render_ids_chat_messages_put_the_principle_in_the_last_user_turn(smol_tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "reply"}, {"role": "user", "content": "question"}]
    text = smol_tokenizer.decode(render_ids(smol_tokenizer, messages, "concise-text"))
    assert "<|im_start|>system\nBe brief.<|im_end|>" in text
    assert "<|im_start|>user\nfirst<|im_end|>\n<|im_start|>assistant\nreply<|im_end|>" in text
    assert f"<|im_start|>user\n{PAD_TEMPLATE}<|im_end|>\n<|im_start|>assistant\n" in text
    assert text.endswith("<|im_start|>assistant\n") and text.count("[Guidelines]") == 1
    assert messages[-1]["content"] == "question", "the caller's messages must not be modified"
    # a single user message is the same as the plain string
    assert render_ids(smol_tokenizer, [{"role": "user", "content": "question"}], "p") == \
        render_ids(smol_tokenizer, "question", "p")


@pytest.mark.parametrize("prompt", [
    "", "   ", [], [{"role": "assistant", "content": "hi"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    [{"role": "user", "content": "  "}], [{"content": "no role"}], ["not a dict"],
])
def test_bad_prompts_are_errors(smol_tokenizer, prompt):
    with pytest.raises(PersonalignError):
        render_ids(smol_tokenizer, prompt, "concise-text")


# ---- request validation ----------------------------------------------------------------------------------------

def test_valid_request_parses_its_preference():
    request = GenerationRequest("Hi", "concise=0.7,friendly=0.3", beta=2.0, top_k=5, temperature=0.5, top_p=1.0)
    assert request.preference == Preference.from_dims("concise=0.7,friendly=0.3") and request.guided
    assert not GenerationRequest("Hi", "concise", beta=0.0).guided
    assert GenerationRequest("Hi", method="base").preference.is_empty


@pytest.mark.parametrize("kwargs, message", [
    ({"top_k": 0}, "top_k"),
    ({"top_k": True}, "top_k"),
    ({"top_k": 2.5}, "top_k"),
    ({"beta": float("nan")}, "beta"),
    ({"beta": float("inf")}, "beta"),
    ({"beta": float("-inf")}, "beta"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"method": "nosuch"}, "unknown method"),
    ({"reward": "nosuch"}, "unknown reward form"),
    ({"preference": None}, "needs a preference"),
    ({"preference": None, "method": "prompt"}, "needs a preference"),
    ({"prompt": "  "}, "empty"),
])
def test_bad_requests_are_errors(kwargs, message):
    args = {"prompt": "Hi", "preference": "concise", **kwargs}
    with pytest.raises(PersonalignError, match=message):
        GenerationRequest(**args)
