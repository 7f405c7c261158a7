"""`personalign train-policy`: train a MetaAlign policy (training/policy.py): SFT, then DPO, with TRL and LoRA.

    personalign data metaalign --out runs/metaalign
    personalign train-policy --data runs/metaalign --out runs/policy --recipe sft-dpo    # -> runs/policy/policy
    personalign train-policy --data runs/metaalign --out runs/policy --dpo-pairs sampled  # DPO on judged samples
    personalign train-policy --data runs/metaalign --out runs/policy --dpo-pairs stated   # backgrounds as stated

A killed run continues with the same command and --resume.
"""

from .flags import add_flags, flag_values
from ..training.policy_config import JUDGED_PAIRS, DPOStage, PolicyConfig, SFTStage

STAGES = (PolicyConfig, SFTStage, DPOStage)


def add_arguments(parser) -> None:
    from dataclasses import fields

    for cls in STAGES:
        add_flags(parser, cls, [f.name for f in fields(cls)])
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after a kill")


def run(args) -> int:
    from dataclasses import fields

    from . import quiet_loading
    from ..training.policy import POLICY_DIR, train_policy

    configs = [cls(**flag_values(args, cls, [f.name for f in fields(cls)])) for cls in STAGES]
    quiet_loading()  # train_policy checks every setting before anything loads
    judge = closeness = None
    if configs[0].recipe == "sft-dpo" and configs[2].dpo_pairs in JUDGED_PAIRS:
        from ..evaluation.meta_pair_judge import meta_pair_closeness, meta_pair_judge
        judge, closeness = meta_pair_judge(), meta_pair_closeness()
    summary = train_policy(*configs, resume=args.resume, pair_judge=judge, closeness=closeness)
    print(f"{'stage':<6} {'held-out loss':>14} {'accuracy':>9} {'margin':>8}")
    for stage, metrics in summary.items():
        print(f"{stage:<6} {metrics.get('eval_loss', float('nan')):>14.4f} "
              f"{metrics.get('eval_rewards/accuracies', float('nan')):>9.3f} "
              f"{metrics.get('eval_rewards/margins', float('nan')):>8.3f}")
    print(f"MetaAlign policy saved to {configs[0].out}/{POLICY_DIR}")
    return 0
