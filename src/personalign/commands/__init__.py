"""The `personalign` subcommands, one module each; `cli.py` parses and dispatches."""

import warnings


def quiet_loading() -> None:
    """Progress bars and advice from transformers would drown the answers; called once the input is valid."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    # deprecation notices about transformers' own internals (raised when peft wraps a model) say nothing to a user
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
