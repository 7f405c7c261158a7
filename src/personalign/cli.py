"""The `personalign` command.

    personalign generate "How do vaccines work?" --with-base -p concise -p elementary -p friendly
    personalign generate "Plan my week" --dims concise=0.7,friendly=0.3 --beta 1.5 --json
    personalign generate --input prompts.jsonl --json
    personalign bench --json
    personalign eval --methods base,prompt,pad,best-of-n,args --limit 20 --out eval-out
    personalign train-judge            # then: personalign eval --judges offline,rm:~/.cache/personalign/judges/harmless
    personalign data convert --source hh-helpful,dsp-domain --input mine.jsonl --out pairs
    personalign data synth --out runs/synth
    personalign train-rm --train runs/synth/pairs.jsonl --out runs/persrm --hold-out friendly,unfriendly
    personalign bench-train
    personalign serve --port 8000      # OpenAI-compatible; personalize with extra_body={"preference": "concise"}

Mistakes a user can fix (bad flags, missing files, empty prompts) print one line and exit with code 2.
"""

import argparse
import importlib
import sys
import warnings

from .errors import PersonalignError
from .validation import PersonalignWarning


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user error
        raise PersonalignError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="personalign", description="Personalized alignment at decoding time.")
    parser.add_argument("--version", action="version", version=f"personalign {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from .commands import generate
    gen = commands.add_parser("generate", help="answer prompts under personal preferences (PAD)",
                              description="Answer a prompt under one or more preferences; one answer each. With no "
                                          "preference, the base model answers.")
    generate.add_arguments(gen)
    _model_args(gen)

    bench = commands.add_parser("bench", help="decoding speed: plain vs PAD vs the released no-cache loop",
                                description="Time plain model.generate, the PAD engine (both reward forms, a LoRA "
                                            "PersRM) and the released no-cache loop; prints a table of tokens/s, "
                                            "ms/step and peak memory. Run it alone on the machine.")
    _model_args(bench)
    bench.add_argument("--max-new-tokens", type=int, default=128,
                       help="tokens decoded per run, end-of-sequence ignored (default 128)")
    bench.add_argument("--batch-sizes", default="1,8", help="comma-separated (default 1,8)")
    bench.add_argument("--released-tokens", default="128,256",
                       help="lengths at which to time the released no-cache loop, comma-separated; '' skips it")
    bench.add_argument("--repeat", type=int, default=3, help="runs per row; the median is reported (default 3)")
    bench.add_argument("--lora-rank", type=int, default=16,
                       help="also time a PersRM with a LoRA adapter of this rank on q,v (0 skips it)")
    bench.add_argument("--json", action="store_true", help="print the table as JSON")

    from .commands import eval as eval_command
    evaluation = commands.add_parser("eval", help="compare methods x preferences x prompts with judges",
                                     description="Answer prompts with several methods and preferences, judge the "
                                                 "answers, write tables and plots; re-running resumes.")
    eval_command.add_arguments(evaluation)

    from .commands import eval_choices
    choices = commands.add_parser("eval-choices", help="multiple-choice accuracy of prompting, the PersRM and PAD",
                                  description="Score every option of a multiple-choice file by preference "
                                              "prompting's log-likelihood, the PersRM's summed reward and PAD's "
                                              "summed score; print how often each picks the right option.")
    eval_choices.add_arguments(choices)
    _model_args(choices)

    from .commands import train_judge
    judge = commands.add_parser("train-judge", help="train the helpfulness/harmless reward-model judges",
                                description="Train small reward-model judges on the HH pairs; prints held-out "
                                            "accuracy. Use them as --judges rm:DIR.")
    train_judge.add_arguments(judge)

    from .commands import train_rm
    train = commands.add_parser("train-rm", help="train a PersRM on preference pairs (DPO, then the head alone)",
                                description="Train a personalized reward model in two stages; re-run with --resume "
                                            "after a kill. Prints held-out accuracy before and after.")
    train_rm.add_arguments(train)
    from .commands import train_policy
    policy = commands.add_parser("train-policy", help="train a MetaAlign policy: SFT, then DPO (TRL, LoRA)",
                                 description="Train one policy to follow the preferences a meta-prompt states, on "
                                             "`personalign data metaalign` data; re-run with --resume after a kill.")
    train_policy.add_arguments(policy)
    from .commands import bench_train
    bench_rm = commands.add_parser("bench-train", help="seconds per PersRM training step (stage 1 and 2)",
                                   description="Time PersRM training steps on fixed-length pairs; prints a table.")
    bench_train.add_arguments(bench_rm)

    from .commands import serve
    server = commands.add_parser("serve", help="an OpenAI-compatible server: many users' personalized requests, "
                                               "one continuous batch",
                                 description="Serve /v1/chat/completions and /v1/completions (streaming or not), "
                                             "/v1/models, /health, /version and /metrics; personalization through "
                                             "the extension fields preference, dims, beta, top_k, method.")
    serve.add_arguments(server)
    _model_args(server)
    from .commands import users
    users_parser = commands.add_parser("users", help="users of `serve --profiles`: keys and saved preferences",
                                       description="Add, list, remove users of a profile database, and save "
                                                   "their preferences.")
    users.add_arguments(users_parser)

    data = commands.add_parser("data", help="preference-pair data: convert data sets and your files to train/valid",
                               description="Tools for the preference pairs that reward models train on.")
    add_data_commands(data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True,
                                          parser_class=_Parser))
    return parser


def add_data_commands(data_commands) -> None:
    """The `personalign data` subcommands. main() runs `commands/data_<name>.py`'s run(args) for subcommand <name>,
    so a new one is a parser added here and that module."""
    from .commands import data_convert
    convert = data_commands.add_parser("convert", help="pairs from data sets and JSONL files -> train/valid JSONL",
                                       description="Read, check and dedupe preference pairs from the shared data "
                                                   "sets and your JSONL files, split them by prompt and write "
                                                   "DIR/train.jsonl and DIR/valid.jsonl.")
    data_convert.add_arguments(convert)
    from .commands import data_synth
    synth = data_commands.add_parser("synth", help="synthesize pairs: base-model rollouts per preference, judged",
                                     description="Roll out the base model under each preference and a neutral "
                                                 "prompt, judge the rollouts per preference and keep the clear "
                                                 "best-vs-worst pairs. Re-running resumes.")
    data_synth.add_arguments(synth)
    from .commands import data_constraints
    constraints = data_commands.add_parser("constraints", help="pairs and a multiple-choice set for constraint "
                                                               "preferences (\"I'm vegetarian\")",
                                           description="Have the base model answer questions recommending what "
                                                       "each constraint of the catalog allows or rules out, check "
                                                       "the answers against the constraint's word list, and write "
                                                       "training pairs and a held-out multiple-choice set. "
                                                       "Re-running resumes.")
    data_constraints.add_arguments(constraints)
    from .commands import data_metaalign
    meta = data_commands.add_parser("metaalign", help="MetaAlign data: pairs under meta-prompts, labels flipped",
                                    description="Build MetaAlign's SFT examples and DPO pairs from the shared data "
                                                "sets: the same answers under meta-prompts that prefer them in "
                                                "opposite orders, and Priority conflicts that System Info wins.")
    data_metaalign.add_arguments(meta)


def _model_args(parser) -> None:
    parser.add_argument("--base", default=None, help="base model: a local dir or hub id (default: embedded SmolLM2)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1")
    parser.add_argument("--dtype", default=None, help="auto (default), bf16, fp16, fp32")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("personalign")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings as one line, like errors; others keep Python's format."""
    if issubclass(category, PersonalignWarning):
        print(f"personalign: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():  # restores Python's warning display when main returns
        warnings.showwarning = _show_warning
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "generate":
            from .commands.generate import run
        elif args.command == "eval":
            from .commands.eval import run
        elif args.command == "eval-choices":
            from .commands.eval_choices import run
        elif args.command == "train-judge":
            from .commands.train_judge import run
        elif args.command == "train-rm":
            from .commands.train_rm import run
        elif args.command == "train-policy":
            from .commands.train_policy import run
        elif args.command == "bench-train":
            from .commands.bench_train import run
        elif args.command == "serve":
            from .commands.serve import run
        elif args.command == "users":
            from .commands.users import run
        elif args.command == "data":
            run = importlib.import_module(f".commands.data_{args.data_command}", __package__).run
        else:
            from .commands.bench import run
        return run(args)
    except PersonalignError as error:
        print(f"personalign: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
