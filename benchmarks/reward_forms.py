"""Which PAD reward form should be the default? A measurement on the embedded model with a PersRM.

    .venv/bin/python benchmarks/reward_forms.py --prompts 8 --max-new-tokens 64 --persrm untrained --forms decoupled

For opposite P-SOUPS preferences (concise vs informative, elementary vs expert) it prints, per reward form and
beta: words per answer, characters per word, how often the answer echoes PAD's prompt template (a failure), and
how far apart the two sides of each axis land. `--persrm` defaults to `personalign generate`'s default PersRM (a
trained one once one ships for the embedded model); with `--persrm untrained` the released form equals preference
prompting exactly (zero reward), so that row is the baseline the decoupled form has to beat.
"""

import argparse
import json
from pathlib import Path

from personalign import GenerationRequest, load_engine
from personalign.answer_checks import echoes_template

FALLBACK_PROMPTS = ["How do vaccines work?", "Why is the sky blue?", "What is a mortgage?", "What causes inflation?",
                    "How do I start running?", "What is a black hole?", "How does a bill become law?",
                    "What is machine learning?"]
PREFERENCES = ["concise", "informative", "elementary", "expert"]


def koala_prompts(limit: int) -> list[str]:
    path = Path(__file__).resolve().parents[2] / "shared/data/psoups/koala_eval_50.json"
    if path.is_file():
        return [row["prompt"] for row in json.loads(path.read_text())][:limit]
    return FALLBACK_PROMPTS[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--betas", default="0.5,1.0")
    parser.add_argument("--forms", default="released,decoupled", help="reward forms to decode with")
    parser.add_argument("--persrm", default=None,
                        help="a saved PersRM dir or 'untrained' (default: generate's default)")
    args = parser.parse_args()
    engine = load_engine(persrm=args.persrm)
    prompts = koala_prompts(args.prompts)
    configs = [("preference prompting", "prompt", None, 0.0)]
    configs += [(f"PAD {form}, beta={b}", "pad", form, float(b))
                for form in args.forms.split(",") for b in args.betas.split(",")]
    print(f"{len(prompts)} prompts, {args.max_new_tokens} new tokens, greedy")
    print(f"{'config':<32} {'pref':<12} {'words':>6} {'chars/word':>10} {'echo %':>7}")
    for name, method, reward, beta in configs:
        stats = {}
        for pref in PREFERENCES:
            requests = [GenerationRequest(p, pref, method=method, reward=reward, beta=beta,
                                          max_new_tokens=args.max_new_tokens) for p in prompts]
            texts = [r.text for r in engine.generate(requests)]
            words = [w for t in texts for w in t.split()]
            stats[pref] = (len(words) / len(texts), sum(map(len, words)) / max(1, len(words)),
                           100 * sum(echoes_template(t) for t in texts) / len(texts))
            print(f"{name:<32} {pref:<12} {stats[pref][0]:>6.1f} {stats[pref][1]:>10.2f} {stats[pref][2]:>7.0f}",
                  flush=True)
        print(f"{name:<32} {'gaps':<12} informative-concise words {stats['informative'][0] - stats['concise'][0]:+.1f}"
              f", expert-elementary chars/word {stats['expert'][1] - stats['elementary'][1]:+.2f}")


if __name__ == "__main__":
    main()
