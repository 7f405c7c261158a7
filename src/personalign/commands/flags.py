"""Command-line flags built from config dataclasses (TRL's way): a field's metadata carries its help text, so a
setting is declared once, next to its default, and every command exposing it gets the same flag, type and help.

    beta: float = field(default=1.0, metadata=flag_help("weight of the personalized reward"))  # flag_help.py
    add_flags(parser, GenerationRequest, ["beta"])          # --beta BETA  weight of ... (default 1.0)
    GenerationRequest(prompt, **flag_values(args, GenerationRequest, ["beta"]))

Metadata keys besides "help": "sep" (the separator of a list flag, default ","), and argparse's own "choices",
"metavar", "action" ("append": a repeatable flag whose values may also be comma-separated).
"""

import argparse
import types
import typing
from dataclasses import MISSING, fields

_ARGPARSE_KEYS = ("choices", "metavar", "action")


def add_flags(parser, cls, names: list[str], *, unset_default: bool = False) -> None:
    """One --flag per named field of `cls`. `unset_default`: flags left out parse as None (so that another source,
    e.g. a YAML file, can supply the value)."""
    by_name = {f.name: f for f in fields(cls)}
    for name in names:
        f = by_name[name]
        meta = dict(f.metadata)
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{name} has no help text")
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else _default(f)
        kwargs = {k: meta[k] for k in _ARGPARSE_KEYS if k in meta}
        kind, item = _kind(f.type)
        if kind is bool:
            kwargs["action"] = "store_true"
        elif kwargs.get("action") != "append":
            kwargs["type"] = _parser_for(kind, item, meta.get("sep", ","))
        shown = "" if required or default in (None, (), [], {}) or kind is bool else f" (default {_show(default)})"
        parser.add_argument("--" + name.replace("_", "-"), dest=name, required=required, help=meta["help"] + shown,
                            default=None if unset_default or kwargs.get("action") == "append" else default, **kwargs)


def flag_values(args, cls, names: list[str]) -> dict:
    """The named fields' values from parsed flags, ready for `cls(**...)`; repeatable flags split on commas."""
    by_name = {f.name: f for f in fields(cls)}
    values = {}
    for name in names:
        value = getattr(args, name)
        if by_name[name].metadata.get("action") == "append":
            kind, _ = _kind(by_name[name].type)
            sep = by_name[name].metadata.get("sep")
            items = [v for raw in value or [] for v in (raw.split(sep) if sep else [raw])]
            # split values: a name given twice counts once
            value = kind(dict.fromkeys(v.strip() for v in items if v.strip())) if sep else kind(items)
            if not value:
                value = _default(by_name[name])
        values[name] = value
    return values


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _kind(annotation):
    """(outer type, item type) of an annotation: int | None -> (int, None), tuple[str, ...] -> (tuple, str)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return origin, typing.get_args(annotation)[0]
    if origin is dict:
        return dict, str
    return annotation, None


def _parser_for(kind, item, sep: str):
    if kind in (tuple, list):
        def parse_list(text):
            return kind(_convert(item, v.strip()) for v in text.split(sep) if v.strip())
        parse_list.__name__ = f"{sep!r}-separated list"  # argparse names the type in its error message
        return parse_list
    if kind is dict:
        def parse_mapping(text):
            pairs = [v.split("=", 1) for v in text.split(sep) if v.strip()]
            if any(len(p) != 2 for p in pairs):
                raise argparse.ArgumentTypeError(f"give NAME=VALUE pairs separated by {sep!r}, got {text!r}")
            return {k.strip(): v.strip() for k, v in pairs}
        return parse_mapping
    return kind


def _convert(kind, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
