"""A saved MetaAlign policy (what `personalign train-policy` writes to RUN/policy/): `policy.json` (format, recipe,
base) and `adapter/` (one LoRA adapter over the base, peft's format). Loading puts the adapter on the base model
under the name "policy", beside a PersRM's adapter when the PersRM shares the base's weights, so that one forward
carries base, PersRM and policy rows, each through its own adapter (decoding/runner.py).
"""

import json
from pathlib import Path

from .errors import PersonalignError

POLICY_FILE = "policy.json"
POLICY_FORMAT = "personalign-metaalign"
ADAPTER_DIR = "adapter"
POLICY_ADAPTER = "policy"  # the adapter's name on the base model (the PersRM's is reward_model.ADAPTER_NAME)


def check_policy_dir(directory) -> Path:
    """The directory of a saved policy, or one line saying what it is not (before anything loads)."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise PersonalignError(f"MetaAlign policy directory not found: {path}")
    if not (path / POLICY_FILE).is_file():
        inner = path / "policy" / POLICY_FILE
        hint = f": did you mean {path / 'policy'}?" if inner.is_file() else " (train one with personalign train-policy)"
        raise PersonalignError(f"{path} is not a MetaAlign policy: it has no {POLICY_FILE}{hint}")
    try:
        config = json.loads((path / POLICY_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PersonalignError(f"cannot read {path / POLICY_FILE}: {error}") from None
    if not isinstance(config, dict) or config.get("format") != POLICY_FORMAT:
        raise PersonalignError(f"{path} is not a personalign MetaAlign policy (format "
                               f"{config.get('format') if isinstance(config, dict) else None!r})")
    if not (path / ADAPTER_DIR / "adapter_config.json").is_file():
        raise PersonalignError(f"{path} has no {ADAPTER_DIR}/adapter_config.json: the policy's adapter is missing")
    return path


def policy_base(directory) -> str:
    """The base model the policy was trained on, as policy.json names it."""
    return json.loads((check_policy_dir(directory) / POLICY_FILE).read_text())["base"]


def attach_policy(model, persrm, directory):
    """Put the policy's adapter on `model` (the base) and return the peft model that carries it: the PersRM's own
    peft model when it shares the base's weights with an adapter, else (or with no PersRM) a new one over `model`."""
    from peft import PeftModel

    adapter = check_policy_dir(directory) / ADAPTER_DIR
    if persrm is not None and persrm.has_adapter and persrm.causal_lm is model:
        persrm.backbone.load_adapter(str(adapter), adapter_name=POLICY_ADAPTER)
        return persrm.backbone.eval()
    return PeftModel.from_pretrained(model, str(adapter), adapter_name=POLICY_ADAPTER).eval()
