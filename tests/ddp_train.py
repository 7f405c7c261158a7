"""Run by tests/test_multiprocess.py, alone or under `accelerate launch`: trains a PersRM on a tiny Llama
with the toy pairs, `--batch-size` pairs per process (so 2 processes at 2 train what 1 process at 4 does)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from personalign.models import embedded_model_dir, load_tokenizer  # noqa: E402
from personalign.training.trainer import train_persrm  # noqa: E402
from test_train_rm import toy_config  # noqa: E402
from tiny import tiny_llama  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path, help="holds pairs.jsonl; the run goes to DIR/OUT")
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()
    # no dropout anywhere: masks drawn per process could not match one process's
    config = toy_config(args.dir, out=str(args.dir / args.out), batch_size=args.batch_size, stage1_steps=6,
                        stage2_steps=2, eval_every=4, save_every=4, log_every=1, lora_dropout=0.0, head_dropout=0.0,
                        lr_stage1=1e-3, lr_stage2=1e-3)
    train_persrm(config, model=tiny_llama(0), tokenizer=load_tokenizer(str(embedded_model_dir())),
                 backbone_name="tiny", progress=False)


if __name__ == "__main__":
    main()
