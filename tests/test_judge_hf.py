"""The reward-model judge on tiny random classifiers sharing SmolLM2's tokenizer: padding, labels, specs, errors."""

import math

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

from personalign.errors import PersonalignError
from personalign.evaluation.judges import hf_reward_model
from personalign.evaluation.judges.hf_reward_model import HFRewardModelJudge
from personalign.evaluation.judges.registry import load_judge
from tiny import VOCAB

PROMPTS = ["How do vaccines work?", "Tell me a joke.", "What is DNS?"] * 4
RESPONSES = ["They train the immune system.", "No.",
             "DNS maps names like example.com to IP addresses so computers can find each other.",
             "", "A very long answer " * 12, "Why did the chicken cross the road?", "Short.",
             "Vaccines show your body a harmless piece of a germ, so it learns to fight the real one.",
             "ok", "Domain Name System.", "Hmm, let me think about it for a while before I answer you.", "!"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small run ~500x faster on one thread: on a busy machine every multi-threaded matmul waits
    for a scheduler tick to sync its threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _save(model, tokenizer, directory):
    with torch.no_grad():
        model.score.weight.mul_(100)  # random init gives near-equal rewards; spread them so orderings are clear
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def llama_rm(smol_tokenizer, tmp_path_factory):
    """A one-label Llama reward model saved without a pad_token_id (the judge must set it)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, num_labels=1,
                         bos_token_id=1, eos_token_id=2, pad_token_id=None)
    return _save(LlamaForSequenceClassification(config).eval(), smol_tokenizer, tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def gpt2_rm(smol_tokenizer, tmp_path_factory):
    """A two-label GPT-2 classifier: absolute positions, so left padding would change its scores."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=256, num_labels=2,
                        bos_token_id=1, eos_token_id=2)
    return _save(GPT2ForSequenceClassification(config).eval(), smol_tokenizer, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def llama_judge(llama_rm):
    return HFRewardModelJudge(llama_rm, device="cpu")


@pytest.fixture(scope="module")
def gpt2_judge(gpt2_rm):
    return HFRewardModelJudge(gpt2_rm, device="cpu")


@pytest.mark.parametrize("fixture", ["llama_judge", "gpt2_judge"])
def test_batched_scores_equal_one_by_one(request, fixture):
    judge = request.getfixturevalue(fixture)
    scores = judge.score("reward", PROMPTS, RESPONSES)  # batches of 8, padded
    assert len(scores) == len(RESPONSES) and all(math.isfinite(s) for s in scores)
    assert len(set(scores)) == len(scores)  # every response read at its own last token, not at a pad
    assert scores == judge.score("reward", PROMPTS, RESPONSES)  # deterministic
    one_by_one = [judge.score("reward", [p], [r])[0] for p, r in zip(PROMPTS, RESPONSES)]  # no padding at all
    assert scores == pytest.approx(one_by_one, abs=1e-4)


def test_two_labels_score_is_log_odds_of_label_one(gpt2_judge):
    judge = gpt2_judge
    inputs = judge.tokenizer(judge.render(PROMPTS[0], RESPONSES[0]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = judge.model(**inputs).logits[0]
    assert judge.score("reward", PROMPTS[:1], RESPONSES[:1]) == pytest.approx([(logits[1] - logits[0]).item()])


def test_chat_template_or_plain_template(llama_rm, llama_judge):
    judge = llama_judge
    assert judge.render("Hi?", "Hello!").endswith("<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
                                                  "Hello!<|im_end|>\n")
    plain = HFRewardModelJudge(llama_rm, device="cpu", template="Q: {prompt}\nA: {response}")
    assert plain.render("Hi?", "Hello!") == "Q: Hi?\nA: Hello!"
    assert plain.score("reward", ["Hi?"], ["Hello!"]) != judge.score("reward", ["Hi?"], ["Hello!"])


def test_spec_dimensions(llama_rm):
    assert HFRewardModelJudge.from_spec(llama_rm, device="cpu").dimensions() == ("reward",)
    judge = load_judge(f"hf:{llama_rm}@helpfulness, harmless")
    assert judge.dimensions() == ("helpfulness", "harmless")
    assert judge.score("helpfulness", PROMPTS[:3], RESPONSES[:3]) == judge.score("harmless", PROMPTS[:3],
                                                                                  RESPONSES[:3])
    with pytest.raises(PersonalignError, match="cannot judge 'reward'"):
        judge.score("reward", ["q"], ["r"])
    with pytest.raises(PersonalignError, match="names no model"):
        HFRewardModelJudge.from_spec("@helpfulness")


def test_missing_path_fails_without_asking_the_hub(monkeypatch, tmp_path):
    def no_hub(*args, **kwargs):
        raise AssertionError("from_pretrained was asked for a path that does not exist")
    monkeypatch.setattr(hf_reward_model.AutoTokenizer, "from_pretrained", no_hub)
    with pytest.raises(PersonalignError, match="reward model directory not found: .*nothing-here"):
        HFRewardModelJudge(str(tmp_path / "nothing-here"))


def test_unloadable_models_give_one_line_errors(monkeypatch, tmp_path, llama_rm, smol_tokenizer):
    with pytest.raises(PersonalignError, match="could not load reward model") as empty_dir:
        HFRewardModelJudge(str(tmp_path))
    assert "\n" not in str(empty_dir.value)

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=3)
    three = tmp_path / "three"
    LlamaForSequenceClassification(config).save_pretrained(three)
    smol_tokenizer.save_pretrained(three)
    with pytest.raises(PersonalignError, match="3 output labels"):
        HFRewardModelJudge(str(three))

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to the hub.\nCheck your connection.")
    monkeypatch.setattr(hf_reward_model.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(PersonalignError, match=r"^could not load reward model 'org/rm': We couldn't connect to the "
                                               r"hub\.$"):
        HFRewardModelJudge("org/rm")
