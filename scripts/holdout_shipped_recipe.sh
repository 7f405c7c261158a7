#!/usr/bin/env bash
# The shipped MetaAlign policy's recipe (v3 -> v7, docs/metaalign-log.md), rerun with the expertise axis held out
# (psoups:elementary and psoups:expert never reach training), then the unseen-preference measurement on that axis for
# v3, v4, v5, v6 and v7 (RUNS_DIR/unseen-STAGE.md). One leak remains: v7's last distillation round is written by PAD
# with the shipped PersRM, which trained on every axis; it writes answers under the four seen dimensions only.
#
#     bash scripts/holdout_shipped_recipe.sh [RUNS_DIR]      # default runs/holdout; about 6 h on 2 CPU cores
#
# Every stage is a personalign command. Re-running the script after a kill skips the finished stages and resumes the
# interrupted one (synth resumes by itself, train-policy with --resume), so it can be split across sittings.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-runs/holdout}
P=.venv/bin/personalign
HOLD=psoups:elementary,psoups:expert
mkdir -p "$R"

synth() {  # OUT ARGS...: a synthesis, skipped once its pairs are written; a partial one resumes by itself
    local out=$1; shift
    [ -f "$R/$out/pairs.jsonl" ] && return
    echo "== synth $out" && $P data synth --out "$R/$out" "$@"
}

data() {  # OUT ARGS...: MetaAlign data (seconds; written atomically)
    local out=$1; shift
    [ -f "$R/$out/stats.json" ] || $P data metaalign --out "$R/$out" "$@"
}

policy() {  # OUT ARGS...: one training stage, skipped once its policy is saved, resumed where a run was started
    local out=$1; shift
    [ -f "$R/$out/policy/policy.json" ] && return
    local resume=()
    [ -d "$R/$out" ] && resume=(--resume)
    echo "== train-policy $out" && $P train-policy --out "$R/$out" "${resume[@]}" "$@"
}

distill() {  # OUT ARGS...: stated answers distilled into backgrounds, skipped once written; resumes by itself
    local out=$1; shift
    [ -f "$R/$out/sft_train.jsonl" ] && return
    echo "== stated distillation $out" && .venv/bin/python scripts/stated_distillation.py --out "$R/$out" \
        --hold-out $HOLD "$@"
}

unseen() {  # STAGE: the held-out axis against prompting (koala_eval_50, 48 tokens); eval resumes by itself
    echo "== unseen preferences: $1"
    .venv/bin/python benchmarks/unseen_preferences.py --data "$R/ma-meta" --policy "$R/$1/policy" \
        --out "$R/unseen-$1" --quiet | tee "$R/unseen-$1.md"
}

SCHEDULE=(--eval-limit 60 --log-every 10)
DPO=(--recipe sft-dpo --sft-steps 0 "${SCHEDULE[@]}")

# v3: targets written under the meta-prompt, SFT on a new adapter, then DPO on their flips
synth synth-meta --method meta-prompting --samples 3 --free-text none --limit 400 --batch-size 16
data ma-meta --sources synth --synth "$R/synth-meta" --hold-out $HOLD
policy v3-sft --data "$R/ma-meta" --recipe sft --sft-steps 300 --sft-lr 4e-4 --sft-eval-every 100 --save-every 50 \
    "${SCHEDULE[@]}"
policy v3 --data "$R/ma-meta" --sft-init "$R/v3-sft/policy" --dpo-steps 150 --dpo-lr 2e-4 --dpo-eval-every 50 \
    --save-every 30 "${DPO[@]}"
unseen v3

# v4: guarded DPO on two rollout pools with their twins and the Priority conflicts, uncapped then capped
synth synth-tone --method prompt --samples 3 --dimensions friendly,unfriendly --free-text none --limit 400 \
    --batch-size 16
data ma-mix --sources synth,dsp:priority,hh:priority --synth "$R/synth-meta,$R/synth-tone" --twins --hold-out $HOLD
data ma-mix-cap --sources synth,dsp:priority,hh:priority --synth "$R/synth-meta,$R/synth-tone" --twins \
    --max-per-preference 700 --hold-out $HOLD
policy v4-stage1 --data "$R/ma-mix" --sft-init "$R/v3/policy" --dpo-steps 150 --dpo-lr 2e-4 --dpo-eval-every 50 \
    --save-every 30 "${DPO[@]}"
policy v4 --data "$R/ma-mix-cap" --sft-init "$R/v4-stage1/policy" --dpo-steps 150 --dpo-lr 1e-4 \
    --dpo-eval-every 50 --save-every 30 --seed 2 "${DPO[@]}"
unseen v4

# v5: a tone pool picked best of eight (stage A), then DPO on the policy's own judged samples (stage B)
synth synth-tone8 --prompts ultrachat_short --limit 400 --method meta-prompting --samples 8 \
    --dimensions friendly,unfriendly --free-text none --batch-size 32
data ma-tone --sources synth,dsp:priority,hh:priority --synth "$R/synth-meta,$R/synth-tone8" --twins \
    --max-per-preference 700 --hold-out $HOLD
policy v5-stageA --data "$R/ma-tone" --sft-init "$R/v4/policy" --dpo-steps 150 --dpo-lr 1e-4 --dpo-eval-every 50 \
    --save-every 30 --seed 3 "${DPO[@]}"
data ma-tp --sources synth,dsp:priority,hh:priority --synth "$R/synth-tone8"   # tone and Priority: nothing held out
policy v5 --data "$R/ma-tp" --sft-init "$R/v5-stageA/policy" --dpo-pairs sampled --dpo-contexts 480 \
    --dpo-samples 6 --dpo-sample-tokens 48 --dpo-steps 120 --dpo-lr 1e-4 --dpo-eval-every 60 --save-every 30 \
    --seed 4 "${DPO[@]}"
unseen v5

# v6: DPO against its own greedy answers to the Priority conflicts
data ma-prio --sources dsp:priority,hh:priority
policy v6 --data "$R/ma-prio" --sft-init "$R/v5/policy" --dpo-pairs sampled --dpo-rejected greedy \
    --dpo-contexts 480 --dpo-samples 6 --dpo-sample-tokens 96 --dpo-steps 30 --dpo-lr 1e-4 --dpo-eval-every 30 \
    --save-every 10 --seed 8 "${DPO[@]}"
unseen v6

# v7: stated answers distilled into backgrounds (two rounds by the policy, a third written by PAD over it), then v6's
# Priority stage again on the distilled policy
SFT=(--recipe sft --sft-eval-every 200 "${SCHEDULE[@]}" --save-every 50)
distill distill-r1 --limit 500 --policy "$R/v6/policy"
policy distill-r1a --data "$R/distill-r1" --sft-init "$R/v6/policy" --sft-steps 400 --sft-lr 1e-4 --seed 3 "${SFT[@]}"
policy distill-r1b --data "$R/distill-r1" --sft-init "$R/distill-r1a/policy" --sft-steps 400 --sft-lr 2e-4 --seed 4 \
    "${SFT[@]}"
distill distill-r2 --limit 500 --seed 6 --policy "$R/distill-r1b/policy"
policy distill-r2a --data "$R/distill-r2" --sft-init "$R/distill-r1b/policy" --sft-steps 400 --sft-lr 2e-4 --seed 5 \
    "${SFT[@]}"
distill distill-pad --limit 200 --seed 8 --policy "$R/distill-r2a/policy" --stated-method metaalign-pad
policy distill-pad-a --data "$R/distill-pad" --sft-init "$R/distill-r2a/policy" --sft-steps 200 --sft-lr 2e-4 \
    --seed 7 "${SFT[@]}"
policy v7 --data "$R/ma-prio" --sft-init "$R/distill-pad-a/policy" --dpo-pairs sampled --dpo-rejected greedy \
    --dpo-contexts 480 --dpo-samples 6 --dpo-sample-tokens 96 --dpo-steps 30 --dpo-lr 1e-4 --dpo-eval-every 30 \
    --save-every 10 --seed 8 "${DPO[@]}"
unseen v7
