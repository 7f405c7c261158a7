"""MetaAlign's implicit-preference measurement: for a background that implies a P-SOUPS dimension ("I'm eight years
old" implies elementary), does the judged dimension move the way the background implies?

    .venv/bin/python benchmarks/implicit_personas.py --policy runs/policy/policy --methods metaalign,meta-prompting

For each prompt (koala_eval_50) and persona, the answer with the persona as User Info is compared, by the offline
judge's measure of the implied dimension, with the same method's answer under a neutral User Info (`NEUTRAL`): it
moved the right way when it scores higher (ties count as not moved). One row per method and persona: prompts,
moved, rate, and the median of the judge's measure under the neutral User Info and under the persona (where the
neutral answers already sit decides how far a persona can move them). These personas are none of the backgrounds the
policy trains on (data/metaalign_synth.PSOUPS_PERSONAS).
With `--stated` the User Info is the dimension's own P-SOUPS text instead of the persona: how often a stated
preference moves its dimension, the most a background implying it can be expected to. With `--trained` it is the
dimension's first training background: how far the trained response reaches before it must generalize.
"""

import argparse
import statistics

from personalign import GenerationRequest, load_engine
from personalign.catalog import lookup
from personalign.data.metaalign_synth import PSOUPS_PERSONAS
from personalign.data.prompt_sets import load_prompts
from personalign.decoding.methods import REGISTRY
from personalign.evaluation.judges.offline import OfflineJudge

PERSONAS = {"elementary": "I'm eight years old.", "expert": "I'm a physics professor.",
            "concise": "I'm in a hurry.", "informative": "I'm a curious student who wants the full picture.",
            "friendly": "I've had a rough week and need cheering up.",
            "unfriendly": "I find friendliness from machines irritating."}
NEUTRAL = "I have no particular preferences about the answer."
assert not set(PERSONAS.values()) & {p for ps in PSOUPS_PERSONAS.values() for p in ps}


def answers(engine, method: str, prompts, user_info: str, max_new_tokens: int, batch_size: int,
            beta: float | None) -> list[str]:
    out = []
    for start in range(0, len(prompts), batch_size):
        requests = [GenerationRequest(p.prompt, user_info, method=method, max_new_tokens=max_new_tokens, beta=beta)
                    for p in prompts[start:start + batch_size]]
        out += [r.text for r in engine.generate(requests)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="meta-prompting",
                        help="comma-separated: meta-prompting, metaalign, metaalign-pad (PAD with the default PersRM)")
    parser.add_argument("--policy", default=None, help="a MetaAlign policy directory (for metaalign)")
    parser.add_argument("--prompts", default="koala_eval_50")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--beta", type=float, default=None, help="the guided methods' beta (metaalign-pad, "
                        "metaalign-cfg; none: each method's own)")
    told = parser.add_mutually_exclusive_group()
    told.add_argument("--stated", action="store_true", help="User Info: each dimension's own text, not a persona")
    told.add_argument("--trained", action="store_true", help="User Info: each dimension's first training background")
    args = parser.parse_args()
    user_infos = {dim: lookup(dim).text for dim in PERSONAS} if args.stated else \
        {dim: PSOUPS_PERSONAS[dim][0] for dim in PERSONAS} if args.trained else PERSONAS
    prompts = load_prompts(args.prompts, args.limit)
    methods = args.methods.split(",")
    if not set(methods) <= set(REGISTRY):
        parser.error(f"--methods names methods of {', '.join(REGISTRY)}")
    guided = any(REGISTRY[m].uses_persrm for m in methods)  # those read the default PersRM
    engine, judge = load_engine(persrm=None if guided else "untrained", policy=args.policy), OfflineJudge()
    rows = []
    for method in methods:
        neutral = answers(engine, method, prompts, NEUTRAL, args.max_new_tokens, args.batch_size, args.beta)
        for dim, user_info in user_infos.items():
            texts = answers(engine, method, prompts, user_info, args.max_new_tokens, args.batch_size, args.beta)
            told, untold = (judge.score(dim, [""] * len(t), t) for t in (texts, neutral))
            moved = sum(a > b for a, b in zip(told, untold))
            rows.append((method, dim, user_info, len(texts), moved, statistics.median(untold),
                         statistics.median(told)))
            print(f"[{method}] {dim}: {moved}/{len(texts)}", flush=True)
    print(f"{'method':<15} {'implies':<12} {'User Info':<52} {'prompts':>7} {'moved':>5} {'rate':>5} "
          f"{'median neutral':>14} {'median told':>11}")
    for method, dim, user_info, n, moved, untold, told in rows:
        print(f"{method:<15} {dim:<12} {user_info[:52]:<52} {n:>7} {moved:>5} {moved / n:>5.2f} "
              f"{untold + 0.0:>14.2f} {told + 0.0:>11.2f}")  # + 0.0: no "-0.00"
    for method in dict.fromkeys(r[0] for r in rows):
        n, moved = (sum(r[i] for r in rows if r[0] == method) for i in (3, 4))
        print(f"{method:<15} {'(all)':<12} {'':<52} {n:>7} {moved:>5} {moved / n:>5.2f}")


if __name__ == "__main__":
    main()
