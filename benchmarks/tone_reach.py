"""Can any User Info make the model write an unfriendly answer? The sentiment of sampled answers under a neutral User
Info, P-SOUPS's unfriendly text, a stronger instruction and one with a worked example, per method:

    .venv/bin/python benchmarks/tone_reach.py --methods meta-prompting,metaalign  # 75 min beside a training job

Every distillation round teaches the policy answers it (or the base) wrote, picked by the judge, so a tone that no
instruction draws out of the model is one no such round can teach. The prompts are training-pool prompts
(helpsteer_short, past the ones synthesis reads by default), never koala_eval_50. Per method and User Info: the mean
VADER compound of the answers (the offline judge scores unfriendly as its negative), how many are negative (below
-0.05, VADER's own threshold), and the most negative answers, so that topic words ("war", "death") can be told from
tone ("Ugh, seriously?").
"""

import argparse
from statistics import mean

from personalign import GenerationRequest, load_engine
from personalign.catalog import lookup
from personalign.data.prompt_sets import load_prompts
from personalign.decoding.methods import REGISTRY
from personalign.evaluation.judges.offline import OfflineJudge

from implicit_personas import NEUTRAL  # the same neutral User Info the implicit measurement compares against

USER_INFOS = {
    "neutral": NEUTRAL,
    "p-soups": lookup("unfriendly").text,
    "rude": "You are rude and impatient. You find my question stupid and annoying, you complain about having to "
            "answer, and you answer grudgingly.",
    "worked example": "Answer in a rude, annoyed tone, like this example. Question: What is the capital of France? "
                      "Answer: Ugh, seriously? It's Paris. Everyone knows that. Stop wasting my time.",
}
NEGATIVE = -0.05  # VADER's own threshold for a negative text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="meta-prompting,metaalign", help="comma-separated meta-prompt methods")
    parser.add_argument("--policy", default=None, help="a MetaAlign policy directory (for metaalign)")
    parser.add_argument("--first", type=int, default=300, help="the first helpsteer_short prompt read")
    parser.add_argument("--limit", type=int, default=12, help="how many prompts")
    parser.add_argument("--samples", type=int, default=4, help="sampled answers per prompt (seeds 0..N-1)")
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--show", type=int, default=3, help="most negative answers printed per row")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if not all(m in REGISTRY and REGISTRY[m].reads_system_info for m in methods):
        parser.error("--methods names meta-prompt methods: "
                     f"{', '.join(m for m in REGISTRY if REGISTRY[m].reads_system_info)}")
    prompts = [p.prompt for p in load_prompts("helpsteer_short")[args.first:args.first + args.limit]]
    guided = any(REGISTRY[m].uses_persrm for m in methods)  # those read the default PersRM
    engine, judge = load_engine(persrm=None if guided else "untrained", policy=args.policy), OfflineJudge()
    rows = []
    for method in methods:
        for name, user_info in USER_INFOS.items():
            requests = [GenerationRequest(p, user_info, method=method, max_new_tokens=args.max_new_tokens,
                                          temperature=args.temperature, seed=seed)
                        for p in prompts for seed in range(args.samples)]
            texts = [r.text for start in range(0, len(requests), 16)
                     for r in engine.generate(requests[start:start + 16])]
            compound = judge.score("friendly", [""] * len(texts), texts)
            rows.append((method, name, mean(compound), sum(c < NEGATIVE for c in compound), len(texts)))
            print(f"[{method}] {name}: VADER {rows[-1][2]:+.2f}", flush=True)
            for c, text in sorted(zip(compound, texts))[:args.show]:
                print(f"    {c:+.2f} {text[:150]!r}")
    print(f"\n{'method':<15} {'User Info':<15} {'mean VADER':>10} {'negative':>9}")
    for method, name, average, negative, n in rows:
        print(f"{method:<15} {name:<15} {average:>+10.2f} {f'{negative}/{n}':>9}")


if __name__ == "__main__":
    main()
