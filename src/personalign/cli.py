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

Mistakes a user can fix (bad flags, missing files, empty prompts) print one line and exit with code 2.
"""

import argparse
import importlib
import sys

from .errors import PersonalignError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user error
        raise PersonalignError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="personalign", description="Personalized alignment at decoding time.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="answer prompts under personal preferences (PAD)",
                              description="Answer a prompt under one or more preferences; one answer each.")
    gen.add_argument("prompt", nargs="?", help="the prompt (or use --input)")
    gen.add_argument("--input", metavar="FILE.jsonl",
                     help='prompts as JSON lines: {"prompt": ..., optional "preference", "dims", "method", "beta"}')
    gen.add_argument("-p", "--preference", action="append", default=[],
                     help="a preference: free text, or a catalog name (concise, expert, P2A, ...); repeatable")
    gen.add_argument("--dims", action="append", default=[],
                     help="a weighted mix of catalog dimensions, e.g. concise=0.7,friendly=0.3; repeatable")
    gen.add_argument("--with-base", action="store_true", help="also print the base model's answer")
    gen.add_argument("--method", default="pad", choices=["pad", "prompt", "base", "fusion", "args"],
                     help="pad: PersRM-guided decoding; prompt: preference in the prompt only; base: no preference; "
                          "fusion: log p_base + beta (log p_PersRM - log p_base); args: top-k rescored by a judge")
    gen.add_argument("--reward-judge", default="offline",
                     help="the judge steering --method args (default offline; see personalign eval --help)")
    gen.add_argument("--reward", choices=["decoupled", "released"], default=None,
                     help="PAD reward form (default: released, see README)")
    _model_args(gen)
    gen.add_argument("--persrm", default=None,
                     help="PersRM: a saved PersRM dir, 'untrained', or a causal-LM dir or hub id (default: the "
                          "trained PersRM shipped for the embedded model; untrained for other bases)")
    gen.add_argument("--beta", type=float, default=1.0, help="weight of the personalized reward (default 1.0)")
    gen.add_argument("--top-k", type=int, default=10, help="candidates re-ranked per step (default 10)")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None, help="seed for sampling")
    gen.add_argument("--stop", action="append", default=[], help="stop string; repeatable")
    gen.add_argument("--batch-size", type=int, default=8, help="requests decoded together (default 8)")
    gen.add_argument("--stream", action="store_true", help="print the answer as it is generated (one answer)")
    gen.add_argument("--json", action="store_true", help="one JSON object per answer")

    bench = commands.add_parser("bench", help="decoding speed: plain vs PAD vs the released no-cache loop")
    _model_args(bench)
    bench.add_argument("--max-new-tokens", type=int, default=128)
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
    from .commands import bench_train
    bench_rm = commands.add_parser("bench-train", help="seconds per PersRM training step (stage 1 and 2)",
                                   description="Time PersRM training steps on fixed-length pairs; prints a table.")
    bench_train.add_arguments(bench_rm)

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


def _model_args(parser) -> None:
    parser.add_argument("--base", default=None, help="base model: a local dir or hub id (default: embedded SmolLM2)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1")
    parser.add_argument("--dtype", default=None, help="auto (default), bf16, fp16, fp32")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "generate":
            from .commands.generate import run
        elif args.command == "eval":
            from .commands.eval import run
        elif args.command == "train-judge":
            from .commands.train_judge import run
        elif args.command == "train-rm":
            from .commands.train_rm import run
        elif args.command == "bench-train":
            from .commands.bench_train import run
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
