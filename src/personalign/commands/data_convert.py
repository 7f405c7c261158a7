"""`personalign data convert`: preference pairs from the shared data sets and from the user's own JSONL files,
written as one train/valid split.

Every pair is checked (a bad line of an input file is an error naming FILE:LINE), repeats are dropped, and the
pairs are split by prompt, so no prompt is on both sides. DIR/train.jsonl and DIR/valid.jsonl are written only
after everything has been read and checked, so a mistake leaves no file behind.
"""

from collections import Counter
from pathlib import Path

from ..data.converters import SOURCES, load_source
from ..data.pairs import FIELDS, dedupe_pairs, read_pairs_jsonl, split_pairs, write_pairs_jsonl
from ..errors import PersonalignError


def add_arguments(parser) -> None:
    """The data convert flags."""
    parser.add_argument("--source", action="append", default=[],
                        help=f"shared data sets to convert, repeatable or comma-separated: {', '.join(SOURCES)} "
                             "(default: all of them when no --input is given)")
    parser.add_argument("--input", action="append", default=[], metavar="FILE.jsonl",
                        help='your own pairs, one {"preference", "prompt", "chosen", "rejected"} object a line '
                             "(the prompt may be chat messages); repeatable")
    parser.add_argument("--field", action="append", default=[], metavar="FIELD=COLUMN",
                        help=f"read FIELD ({', '.join(FIELDS)}) of the --input files from their column COLUMN, "
                             "e.g. prompt=question; repeatable")
    parser.add_argument("--preference", default=None, metavar="TEXT",
                        help="the preference of --input lines that have no preference column")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for train.jsonl and valid.jsonl")
    parser.add_argument("--valid-fraction", type=float, default=0.1,
                        help="share of the prompts held out for validation (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--data-dir", default=None, help="shared data directory (default: $PERSONALIGN_DATA or "
                                                         "../shared/data)")


def run(args) -> int:
    """Read, check, dedupe and split the pairs, write the two files and print the counts per preference."""
    # every flag is checked before any data is read
    sources = _sources(args.source, default=[] if args.input else list(SOURCES))
    fields = _fields(args.field)
    if (fields or args.preference is not None) and not args.input:
        raise PersonalignError("--field and --preference apply to --input files; give --input")
    if args.preference is not None and not args.preference.strip():
        raise PersonalignError("--preference is empty")
    if not 0.0 < args.valid_fraction < 1.0:
        raise PersonalignError(f"--valid-fraction must be between 0 and 1, got {args.valid_fraction}")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise PersonalignError(f"--out {out} is not a directory")

    pairs = [pair for name in sources for pair in load_source(name, args.data_dir)]
    pairs += [pair for path in args.input for pair in read_pairs_jsonl(path, fields, args.preference)]
    pairs, dropped = dedupe_pairs(pairs)
    train, valid = split_pairs(pairs, args.valid_fraction, args.seed)
    if not train or not valid:
        raise PersonalignError(f"{len(pairs)} pairs are too few to split into train and valid: add pairs with "
                               "other prompts or change --valid-fraction")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PersonalignError(f"cannot create --out {out}: {e.strerror}") from None
    write_pairs_jsonl(out / "train.jsonl", train)
    write_pairs_jsonl(out / "valid.jsonl", valid)

    n_train, n_valid = Counter(p.preference for p in train), Counter(p.preference for p in valid)
    print(f"{'train':>6} {'valid':>6}  preference")
    for preference in dict.fromkeys(p.preference for p in pairs):  # in the order they were read
        print(f"{n_train[preference]:>6} {n_valid[preference]:>6}  {preference}")
    print(f"{len(train):>6} {len(valid):>6}  all ({dropped} repeated pairs dropped)")
    print(f"wrote {out / 'train.jsonl'} and {out / 'valid.jsonl'}")
    return 0


def _sources(values: list[str], default: list[str]) -> list[str]:
    names = [v.strip() for value in values for v in value.split(",") if v.strip()] or default
    for name in names:
        if name not in SOURCES:
            raise PersonalignError(f"unknown --source {name!r}; choose from {', '.join(SOURCES)}")
    return list(dict.fromkeys(names))  # a source named twice is read once


def _fields(values: list[str]) -> dict[str, str]:
    """--field FIELD=COLUMN flags as {field: column}."""
    fields = {}
    for value in values:
        field, sep, column = (part.strip() for part in value.partition("="))
        if not sep or not column:
            raise PersonalignError(f"--field {value!r}: give FIELD=COLUMN, e.g. prompt=question")
        if field not in FIELDS:
            raise PersonalignError(f"--field {value!r}: unknown field {field!r}; the fields are {', '.join(FIELDS)}")
        if field in fields:
            raise PersonalignError(f"--field {field} is given twice")
        fields[field] = column
    return fields
