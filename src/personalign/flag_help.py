"""Config fields carry the help text of their command-line flag in their metadata, so a setting is declared once,
beside its default; commands/flags.py builds the flags from it."""


def flag_help(text: str, **flag) -> dict:
    """A field's metadata: its flag's help text, and argparse settings (choices, metavar, action) or a list
    separator (sep) where the flag needs them."""
    return {"help": text, **flag}
