"""Per-row LoRA (decoding/row_lora.py): a batch mixing adapters equals each row run alone through peft; linears on
few rows (decoding/small_rows.py) compute what F.linear does."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from personalign.decoding.row_lora import RowLoRA
from personalign.decoding.small_rows import MAX_ROWS, SmallRowLinears
from personalign.errors import PersonalignError
from tiny import tiny_llama


def two_adapters(**extra):
    """tiny_llama(0) carrying adapters "a" (q, v) and "b" (q, k, o, with another rank and scale), both non-zero."""
    model = get_peft_model(tiny_llama(0), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False, **extra), adapter_name="a")
    model.add_adapter("b", LoraConfig(r=2, lora_alpha=6, target_modules=["q_proj", "k_proj", "o_proj"],
                                      init_lora_weights=False, **extra))
    return model.eval()


def alone(model, ids, adapter):
    """Row logits through one adapter (None: the bare weights), by peft itself."""
    if adapter is None:
        with model.disable_adapter():
            return model(input_ids=ids).logits
    model.set_adapter(adapter)
    return model(input_ids=ids).logits


@pytest.mark.parametrize("adapters", [[None, "a", "a", "b", "a"],  # scattered rows: gathered and scattered back
                                      [None, "a", "b", "a", None],  # every other row, the engine's: a strided view
                                      [None, None, "a", "a", "b"]])  # consecutive rows: a view
@torch.inference_mode()
def test_a_mixed_batch_equals_each_row_through_its_own_adapter(adapters):
    model = two_adapters()
    ids = torch.randint(3, 1000, (5, 7), generator=torch.Generator().manual_seed(0))
    with RowLoRA(model, ("a", "b")).rows(adapters):
        mixed = model(input_ids=ids).logits
    expected = torch.cat([alone(model, ids[i:i + 1], name) for i, name in enumerate(adapters)])
    torch.testing.assert_close(mixed, expected, rtol=1e-5, atol=1e-4)
    bare = alone(model, ids, None)
    assert all(not torch.allclose(expected[i], bare[i], atol=1e-3) for i, name in enumerate(adapters) if name)
    with model.disable_adapter():  # hooks are gone after the context: the bare weights again
        torch.testing.assert_close(model(input_ids=ids).logits, torch.cat([alone(model, ids[i:i + 1], None)
                                                                           for i in range(5)]))


def test_lora_variants_are_refused_by_name():
    with pytest.raises(PersonalignError, match="adapter 'a' is not plain LoRA .*DoRA"):
        RowLoRA(two_adapters(use_dora=True), ("a", "b"))


@torch.inference_mode()
def test_bare_is_peft_disable_adapter_and_leaves_outer_switches_alone():
    model = two_adapters()
    ids = torch.randint(3, 1000, (2, 6), generator=torch.Generator().manual_seed(1))
    row_lora = RowLoRA(model, ("a", "b"))
    with row_lora.bare():
        bare = model(input_ids=ids).logits
    torch.testing.assert_close(bare, alone(model, ids, None))
    model.set_adapter("a")
    torch.testing.assert_close(model(input_ids=ids).logits, alone(model, ids, "a"))  # switched back on
    with model.disable_adapter():  # an outer context's switch survives an inner one
        with row_lora.bare():
            pass
        torch.testing.assert_close(model(input_ids=ids).logits, bare)
    with row_lora.bare():  # and an inner bare leaves its outer one in place
        with row_lora.bare():
            pass
        torch.testing.assert_close(model(input_ids=ids).logits, bare)
    assert not any("forward" in layer.__dict__ for layer in row_lora.tuner_layers)  # nothing left behind


@torch.inference_mode()
def test_few_row_linears_compute_what_f_linear_does_and_leave_no_trace():
    model = two_adapters()
    ids = torch.randint(3, 1000, (3, 5), generator=torch.Generator().manual_seed(2))
    expected = model(input_ids=ids).logits
    linears = SmallRowLinears(model)
    linears.enabled = True  # whatever this CPU's timing said
    with linears.rows(3 * 5):
        assert all("forward" in linear.__dict__ for linear in linears.linears)
        torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-4)
    assert not any("forward" in linear.__dict__ for linear in linears.linears)
    for rows in (1, MAX_ROWS + 1):  # one row, or a prefill: F.linear
        with linears.rows(rows):
            assert not any("forward" in linear.__dict__ for linear in linears.linears)
