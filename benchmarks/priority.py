"""MetaAlign's Priority measurement: on held-out conflicts (System Info sets a rule, User Info asks for the opposite),
how often does the answer obey System Info, by the rule's own offline check (data/priority.py)?

    .venv/bin/python benchmarks/priority.py --data runs/metaalign --limit 124 --max-new-tokens 96
    .venv/bin/python benchmarks/priority.py --data runs/metaalign --policy runs/policy/policy \
        --methods metaalign,meta-prompting,base

Reads the priority pairs of DATA/valid.jsonl (prompts never trained on), answers each with every method asked
(meta-prompting: the base model reading the meta-prompt; metaalign: the trained policy reading it, --policy; base:
the bare prompt, for reference) and prints one row
per method and rule: conflicts, answers obeying System Info, and the rate. The pairs' chosen answers obey and their
rejected ones break the rule by construction, so they are the check's own sanity rows.
"""

import argparse
from collections import defaultdict

from personalign import GenerationRequest, load_engine
from personalign.data.metaalign import read_meta_pairs
from personalign.data.priority import obeys
from personalign.decoding.methods import REGISTRY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `personalign data metaalign` directory")
    parser.add_argument("--methods", default="meta-prompting,base", help="comma-separated engine methods")
    parser.add_argument("--limit", type=int, default=None, help="the first N priority pairs")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--policy", default=None, help="a MetaAlign policy directory (for --methods metaalign)")
    parser.add_argument("--beta", type=float, default=None, help="the guided methods' beta (metaalign-cfg; none: "
                        "its own)")
    args = parser.parse_args()
    pairs = [p for p in read_meta_pairs(f"{args.data}/valid.jsonl") if p.rule][:args.limit]
    engine = load_engine(persrm="untrained", policy=args.policy)
    rows = defaultdict(lambda: [0, 0])  # (method, rule) -> [conflicts, obeyed]
    for pair in pairs:
        rows[("chosen (data)", pair.rule)][0] += 1
        rows[("chosen (data)", pair.rule)][1] += obeys(pair.rule, pair.params, pair.chosen)
        rows[("rejected (data)", pair.rule)][0] += 1
        rows[("rejected (data)", pair.rule)][1] += obeys(pair.rule, pair.params, pair.rejected)
    for method in args.methods.split(","):
        for start in range(0, len(pairs), args.batch_size):
            batch = pairs[start:start + args.batch_size]
            meta = REGISTRY[method].reads_system_info
            requests = [GenerationRequest(p.prompt, p.user_info if meta else None, method=method,
                                          system_info=p.system_info if meta else None,
                                          max_new_tokens=args.max_new_tokens, beta=args.beta) for p in batch]
            for pair, result in zip(batch, engine.generate(requests)):
                rows[(method, pair.rule)][0] += 1
                rows[(method, pair.rule)][1] += obeys(pair.rule, pair.params, result.text)
            print(f"[{method}] {min(start + args.batch_size, len(pairs))}/{len(pairs)}", flush=True)
    print(f"{'answers':<18} {'rule':<12} {'conflicts':>9} {'obey':>5} {'rate':>6}")
    for (method, rule), (n, kept) in sorted(rows.items()):
        print(f"{method:<18} {rule:<12} {n:>9} {kept:>5} {kept / n:>6.2f}")
    for method in dict.fromkeys(m for m, _ in rows):
        n, kept = (sum(v[i] for (m, _), v in rows.items() if m == method) for i in (0, 1))
        print(f"{method:<18} {'(all)':<12} {n:>9} {kept:>5} {kept / n:>6.2f}")


if __name__ == "__main__":
    main()
