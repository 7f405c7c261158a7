"""The one decoding loop: batched, KV-cached, streaming; PAD, preference prompting and the bare base are configs.

Each request owns a few rows: the base row (the prompt as the base model reads it), one PersRM row per
preference component, and for the decoupled reward a reference row (the PersRM without the preference). Rows that
would compute the same thing are one row: when the PersRM is the base model plus a head, the base row already
gives the PersRM's hidden state for the same ids, so released-form PAD costs a single forward row. A step:

    1. base logits of every request -> its top-k candidates
    2. PersRM (and reference) logits of the guided requests, restricted to those candidates -> rewards
    3. score = base logit + beta * reward -> greedy pick or sample
    4. append the token, stream text, retire finished requests (their rows leave the KV cache)
    5. one forward for every remaining row

Every method is one declaration in the registry (methods.py): what each of its rows reads, and its scoring rule in
steps 2-3 (rules.py): PAD's reward, logit fusion's whole-vocabulary mix of the base and the guide rows (a new
candidate set), ARGS's sequence-level reward of each candidate continuation, or none (prompting, the bare base).
The engine reads those fields and never a method's name. Requests can be submitted between steps (they are
prefilled and join the batch), which is what a serving loop needs for continuous batching. The engine is not
thread-safe: one owner calls submit/cancel/step (serving/scheduler.py is that owner in the server).
"""

import copy
import itertools
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from ..errors import PersonalignError
from ..prompts import as_messages
from ..metaalign_policy import POLICY_ADAPTER
from ..reward_model import PersonalizedRewardModel, ADAPTER_NAME
from ..validation import check_fits_context, check_number, check_top_k
from . import methods
from .methods import Method, Rule
from .request import GenerationRequest, GenerationResult
from .rules import NEG_INF, fusion_logits, pad_reward, pad_scores, top_candidates
from .runner import RowRunner
from .sampling import choose
from .sequence_rm import CachedSequenceReward
from .text import TextTracker

# Measured (benchmarks/reward_forms.py, README): on SmolLM2 the decoupled form makes the model copy PAD's prompt
# template into most answers, so the released form is the default.
DEFAULT_REWARD_FORM = "released"

# ARGS's sequence-level reward: (preference, prompt, answer text) triples -> one number each, higher = better;
# or a CachedSequenceReward, a decoder reward model that follows each request with a KV-cached row
SequenceReward = Callable[[list, list[str], list[str]], list[float]] | CachedSequenceReward


@dataclass
class StepEvent:
    request_id: int
    token_id: int
    delta: str  # new text safe to show
    result: GenerationResult | None = None  # set when the request finished with this step
    error: Exception | None = None  # set when the request failed (a remote backend's; this engine raises instead)


@dataclass(eq=False)  # compared by identity
class _Active:
    request_id: int
    request: GenerationRequest
    method: Method
    prompt_ids: list[int]
    base_rows: list[tuple]  # row keys in the base runner (one)
    rm_rows: list[tuple]  # row keys in the PersRM runner (the same runner when weights are shared)
    seq_rows: list[tuple]  # row keys in the sequence reward model's runner (one for ARGS requests, if it has one)
    base_index: int
    policy_index: list[int]
    reference_index: int | None
    text: TextTracker
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)


class Engine:
    def __init__(self, model, tokenizer, persrm: PersonalizedRewardModel | None = None,
                 reward_form: str = DEFAULT_REWARD_FORM, sequence_reward: SequenceReward | None = None,
                 policy=None, policy_source: str | None = None, max_running: int | None = None,
                 max_prefill_tokens: int | None = None, max_prompt_tokens: int | None = None):
        """`sequence_reward` scores answers for the `args` method (e.g. an evaluation judge). `policy`: the peft
        model carrying a MetaAlign policy's adapter on `model` (metaalign_policy.attach_policy), for the methods
        whose base row runs through it; `policy_source` names it (run identity). Admission: at most `max_running`
        requests decode together, and one step prefills at most `max_prefill_tokens` prompt tokens (but always
        one waiting request when there is room), so a long prompt delays the running answers by one prefill of
        itself at most; a request whose prompt (as its rows read it) is longer than `max_prompt_tokens` is refused
        at submit. None: no limit."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.persrm = (persrm or PersonalizedRewardModel(model)).eval()
        self.reward_form = reward_form
        base_vocab = model.get_output_embeddings().weight.shape[0]
        if self.persrm.vocab_size != base_vocab:
            raise PersonalignError(f"the PersRM's vocabulary ({self.persrm.vocab_size} tokens) differs from the "
                                   f"base model's ({base_vocab}); PAD needs a PersRM with the base's tokenizer")
        adapters = (ADAPTER_NAME,) if self.persrm.has_adapter else ()
        policy_adapters = (POLICY_ADAPTER,) if policy is not None else ()
        self.policy, self.policy_source = policy, policy_source
        self.shared = self.persrm.causal_lm is model
        if self.shared:  # one runner: base, PersRM and policy rows in one forward, each through its own adapter
            self.rm_runner = RowRunner(policy if policy is not None else self.persrm.backbone,
                                       adapters + policy_adapters)
            self.base_runner = self.rm_runner
        else:
            self.rm_runner = RowRunner(self.persrm.backbone, adapters)
            self.base_runner = RowRunner(policy if policy is not None else model, policy_adapters)
        # the peft model whose adapters peft injected into `model` itself: calling `model` runs through them
        self._carrier = policy if policy is not None else self.persrm.backbone if self.shared and adapters else None
        self.eos_ids = end_of_turn_ids(model.generation_config, tokenizer)
        self.context = min(filter(None, (_context(m) for m in (model, self.persrm.causal_lm))), default=None)
        limits = {"max_running": max_running, "max_prefill_tokens": max_prefill_tokens,
                  "max_prompt_tokens": max_prompt_tokens}
        for name, limit in limits.items():
            if limit is not None:
                check_number(name, limit, minimum=1, whole=True)
        self.max_running, self.max_prefill_tokens = max_running, max_prefill_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self._ids = itertools.count()
        self._pending: list[_Active] = []
        self._active: list[_Active] = []
        self._unclaimed: dict[int, list[StepEvent]] = {}  # events generate()/stream() stepped past for others
        self.set_sequence_reward(sequence_reward)

    def bare_model(self):
        """A context in which calling `self.model` runs the base's own weights: a LoRA PersRM sharing them, or a
        MetaAlign policy, has its adapter injected into the base's layers (perplexity under the base needs this)."""
        return self._carrier.disable_adapter() if self._carrier is not None else nullcontext()

    def bare_copy(self):
        """A copy of the base model without any adapter (for methods that put their own on it: soups)."""
        return copy.deepcopy(self._carrier).unload() if self._carrier is not None else copy.deepcopy(self.model)

    def set_sequence_reward(self, sequence_reward: SequenceReward | None) -> None:
        """Give the `args` method its reward (only between batches: running requests would lose their rows)."""
        if self.busy:
            raise PersonalignError("the ARGS reward can only change while no request is running")
        self.sequence_reward, self.seq_runner = sequence_reward, None
        if isinstance(sequence_reward, CachedSequenceReward):
            base_vocab = self.model.get_output_embeddings().weight.shape[0]
            if sequence_reward.vocab_size != base_vocab:
                raise PersonalignError(f"the ARGS reward model's vocabulary ({sequence_reward.vocab_size} tokens) "
                                       f"differs from the base model's ({base_vocab}); it must read the base's ids")
            self.seq_runner = RowRunner(sequence_reward.model)
        self._hidden = {id(r): None for r in self.runners}

    @property
    def runners(self) -> list[RowRunner]:
        runners = [self.base_runner] if self.shared else [self.base_runner, self.rm_runner]
        return runners + [self.seq_runner] if self.seq_runner else runners

    # ---- admission -------------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> int:
        """Queue a request; it joins the batch at the next step. Returns its id."""
        method = methods.get(request.method)
        if method.base_adapter and self.policy is None:
            raise PersonalignError(f"method {request.method!r} needs a trained MetaAlign policy (--policy DIR, "
                                   "load_engine(policy=...)); the base reading the meta-prompt is --method "
                                   "meta-prompting")
        if method.guide_adapter and not self.shared:
            raise PersonalignError(f"method {request.method!r} runs its guide rows through the policy, so the PersRM "
                                   "must ride on the policy's base model (or be left out)")
        if method.rule is Rule.ARGS and self.sequence_reward is None:
            raise PersonalignError(f"method {request.method!r} needs a sequence-level reward: build the engine with "
                                   "sequence_reward=... (personalign eval passes its judges)")
        check_top_k(request.top_k, self.persrm.vocab_size)
        active = self._plan(next(self._ids), request)
        longest = max(len(ids) for ids, _ in active.base_rows + active.rm_rows + active.seq_rows)
        if self.max_prompt_tokens is not None and longest > self.max_prompt_tokens:
            raise PersonalignError(f"the prompt is {longest} tokens as the model reads it (templates included), more "
                                   f"than the limit of {self.max_prompt_tokens}: shorten it")
        check_fits_context(longest, request.max_new_tokens, self.context)
        self._pending.append(active)
        return active.request_id

    def cancel(self, request_id: int) -> None:
        """Drop a request (pending or running) without a result."""
        self._pending = [a for a in self._pending if a.request_id != request_id]
        self._unclaimed.pop(request_id, None)
        self._retire([a for a in self._active if a.request_id == request_id])

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._active)

    @property
    def running(self) -> int:
        return len(self._active)

    def claim(self, request_id: int) -> list[StepEvent]:
        """The events of `request_id` that generate() or stream() stepped past while answering their own requests
        (theirs, in order; handed over once)."""
        return self._unclaimed.pop(request_id, [])

    def _plan(self, request_id: int, req: GenerationRequest) -> _Active:
        """Which rows a request needs (its method's declaration), with duplicates merged."""
        method, pref, tok = methods.get(req.method), req.preference, self.tokenizer
        base_ids = method.base_row(tok, req, pref.text)
        adapter = method.guide_adapter or (ADAPTER_NAME if self.persrm.has_adapter else None)
        base_key = (tuple(base_ids), method.base_adapter)
        base_rows = [base_key]
        rm_rows = base_rows if self.shared else []

        def row(key):
            if key not in rm_rows:
                rm_rows.append(key)
            return rm_rows.index(key)

        policy, reference, seq_rows = [], None, []
        if req.guided and method.guide_rows:
            # one component reads exactly the base's ids (the released PAD); a mix reads each text on its own
            texts = [pref.text] if len(pref.components) == 1 else pref.texts
            policy = [row((tuple(method.guide_rows(tok, req, t)), adapter)) for t in texts]
            if method.reference_row and (method.reward_form or req.reward or self.reward_form) == "decoupled":
                reference = row((tuple(method.reference_row(tok, req, pref.text)), adapter))
        if req.guided and method.sequence_row and self.seq_runner:
            seq_rows = [(tuple(method.sequence_row(tok, req, pref.text)), None)]
        generator = None
        if req.temperature > 0:
            generator = torch.Generator().manual_seed(req.seed if req.seed is not None else random.getrandbits(63))
        return _Active(request_id, req, method, base_ids, base_rows, rm_rows, seq_rows, base_rows.index(base_key),
                       policy, reference, TextTracker(self.tokenizer, req.stop), generator)

    def _admit(self) -> None:
        room = len(self._pending) if self.max_running is None else self.max_running - len(self._active)
        new, used = [], 0
        for active in self._pending[:max(room, 0)]:
            # per runner: with shared weights the base and PersRM rows are one list, prefilled once
            tokens = sum(len(ids) for runner in self.runners for ids, _ in self._rows_of(active, runner))
            if new and self.max_prefill_tokens is not None and used + tokens > self.max_prefill_tokens:
                break
            new.append(active)
            used += tokens
        if not new:
            return
        self._pending = self._pending[len(new):]
        for runner in self.runners:
            keys = [k for a in new for k in self._rows_of(a, runner)]
            if not keys:  # e.g. unguided requests need no PersRM rows
                continue
            hidden = runner.add([list(ids) for ids, _ in keys], [adapter for _, adapter in keys])
            previous = self._hidden[id(runner)]
            self._hidden[id(runner)] = hidden if previous is None else torch.cat([previous, hidden])
        self._active += new

    def _rows_of(self, active: _Active, runner: RowRunner) -> list[tuple]:
        if runner is self.base_runner:
            return active.base_rows
        if runner is self.seq_runner:
            return active.seq_rows
        return active.rm_rows

    def _offsets(self, runner: RowRunner) -> list[int]:
        """Where each active request's rows start in `runner`."""
        sizes = [len(self._rows_of(a, runner)) for a in self._active]
        return [0] + list(itertools.accumulate(sizes))[:-1]

    # ---- the loop --------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self) -> list[StepEvent]:
        """Admit waiting requests, choose one token for every active request, advance the models."""
        if self._pending:
            self._admit()
        if not self._active:
            return []
        tokens = self._choose_tokens()
        events, finished = [], []
        for active, token in zip(self._active, tokens):
            event = self._advance(active, token)
            events.append(event)
            if event.result is not None:
                finished.append(active)
        self._retire(finished)
        if self._active:
            for runner in self.runners:
                per_row = [t for a in self._active for t in [a.tokens[-1]] * len(self._rows_of(a, runner))]
                if per_row:
                    tokens = torch.tensor(per_row, dtype=torch.long, device=runner.device)
                    self._hidden[id(runner)] = runner.step(tokens)
        return events

    def _choose_tokens(self) -> list[int]:
        reqs = [a.request for a in self._active]
        device = self.base_runner.device
        base_hidden = self._hidden[id(self.base_runner)]
        base_offsets = self._offsets(self.base_runner)
        base_rows = torch.tensor([o + a.base_index for o, a in zip(base_offsets, self._active)], device=device)
        base_logits = self.base_runner.logits(base_hidden[base_rows]).float()
        top_k = torch.tensor([r.top_k for r in reqs], device=device)
        cand, base_c, live = top_candidates(base_logits, top_k)
        beta = torch.tensor([r.beta if r.guided else 0.0 for r in reqs], device=device)
        reward = torch.zeros_like(base_c)
        by_rule = {rule: [j for j, a in enumerate(self._active) if a.request.guided and a.method.rule is rule]
                   for rule in Rule}
        for rule, rewards in ((Rule.PAD, self._pad_rewards), (Rule.ARGS, self._args_rewards)):
            if rows := by_rule[rule]:  # rules that reward the base's top-k: score = z_b + beta * r
                reward[rows] = rewards(rows, cand[rows], base_c[rows], live[rows])
        scores = pad_scores(base_c, reward, beta, live)
        if fusion := by_rule[Rule.FUSION]:  # a new candidate set: the top-k of the fused distribution
            fused = fusion_logits(base_logits[fusion], self._guide_log_probs(fusion), beta[fusion])
            f_cand, f_scores, f_live = top_candidates(fused, top_k[fusion])
            width = cand.shape[1] - f_cand.shape[1]  # <= 0 never: fusion rows' k <= the batch's largest k
            cand[fusion] = torch.nn.functional.pad(f_cand, (0, width))
            scores[fusion] = torch.nn.functional.pad(f_scores.masked_fill(~f_live, NEG_INF), (0, width),
                                                     value=NEG_INF)
        return choose(cand, scores, [r.temperature for r in reqs], [r.top_p for r in reqs],
                      [a.generator for a in self._active])

    def _policy_rows(self, guided: list[int]):
        """The PersRM rows of each guided request's components, padded to the same count n (padding repeats the
        first row with weight 0): flat row indices [G*n], weights [G, n], n."""
        offsets = self._offsets(self.rm_runner)
        actives = [self._active[j] for j in guided]
        n = max(len(a.policy_index) for a in actives)
        rows = [[offsets[j] + i for i in (a.policy_index + a.policy_index[:1] * (n - len(a.policy_index)))]
                for j, a in zip(guided, actives)]
        device = self.rm_runner.device
        weights = torch.tensor([a.request.preference.weights + [0.0] * (n - len(a.policy_index)) for a in actives],
                               device=device)
        return torch.tensor(rows, device=device).flatten(), weights, n

    def _pad_rewards(self, guided: list[int], cand, base_c, live) -> torch.Tensor:
        hidden = self._hidden[id(self.rm_runner)]
        offsets = self._offsets(self.rm_runner)
        actives = [self._active[j] for j in guided]
        own_head = [a.method.guide_adapter is not None for a in actives]  # a policy guiding itself: its own head
        flat, weights, n = self._policy_rows(guided)
        policy_c = self._candidate_logits(hidden[flat], cand.repeat_interleave(n, 0),
                                          [o for o in own_head for _ in range(n)]).view(len(guided), n, -1)
        if all(a.reference_index is not None for a in actives):
            ref_rows = torch.tensor([offsets[j] + a.reference_index for j, a in zip(guided, actives)])
            reference_c = self._candidate_logits(hidden[ref_rows.to(cand.device)], cand, own_head)
        elif all(a.reference_index is None for a in actives):
            reference_c = base_c
        else:  # a batch mixing both reward forms: compute the decoupled reference where asked
            reference_c = base_c.clone()
            decoupled = [i for i, a in enumerate(actives) if a.reference_index is not None]
            ref_rows = torch.tensor([offsets[guided[i]] + actives[i].reference_index for i in decoupled])
            reference_c[decoupled] = self._candidate_logits(hidden[ref_rows.to(cand.device)], cand[decoupled],
                                                            [own_head[i] for i in decoupled])
        return pad_reward(policy_c, weights, reference_c, live, self._neutral_ends(actives, cand))

    def _neutral_ends(self, actives, cand) -> torch.Tensor | None:
        """Where rows asking end_of_turn="base" have an end-of-turn token among their candidates."""
        base_decides = [a.request.end_of_turn == "base" for a in actives]
        if not any(base_decides):  # decided on the host: no device sync when every row leaves it to the reward
            return None
        ends = torch.tensor(sorted(self.eos_ids), dtype=torch.long, device=cand.device)
        return torch.isin(cand, ends) & torch.tensor(base_decides, device=cand.device)[:, None]

    def _guide_log_probs(self, guided: list[int]):
        """Whole-vocabulary log-probabilities of each request's guide rows [G, n, V] and their weights [G, n]."""
        flat, weights, n = self._policy_rows(guided)
        hidden = self._hidden[id(self.rm_runner)][flat]
        logits = self.rm_runner.logits(self.persrm.head(hidden)).float()
        return logits.log_softmax(-1).view(len(guided), n, -1), weights

    def _args_rewards(self, rows: list[int], cand, base_c, live) -> torch.Tensor:
        """R(prompt, answer so far + candidate) for every live candidate; dead slots get 0."""
        if self.seq_runner:
            offsets = self._offsets(self.seq_runner)
            index = torch.tensor([offsets[j] for j in rows], device=self.seq_runner.device)
            hidden = self.seq_runner.peek(index, cand.to(self.seq_runner.device))
            return self.sequence_reward.rewards(hidden).to(cand.device).masked_fill(~live, 0.0)
        prefs, prompts, texts, where = [], [], [], []
        for i, j in enumerate(rows):
            active = self._active[j]
            prompt = as_messages(active.request.prompt)[-1]["content"]  # the user's words
            for slot in live[i].nonzero().flatten().tolist():
                ids = active.tokens + [int(cand[i, slot])]
                texts.append(self.tokenizer.decode(ids, skip_special_tokens=True))
                prefs.append(active.request.preference)
                prompts.append(prompt)
                where.append((i, slot))
        reward = torch.zeros(cand.shape, dtype=torch.float32, device=cand.device)
        for (i, slot), value in zip(where, self.sequence_reward(prefs, prompts, texts)):
            reward[i, slot] = float(value)
        return reward

    def _candidate_logits(self, hidden: torch.Tensor, cand: torch.Tensor, own_head: list[bool]) -> torch.Tensor:
        """Logits at the candidate ids only: the PersRM's U(W h + b), or the model's own U h on rows where
        `own_head` is true (a policy's guide rows). Decided on the host: no device sync on the common paths."""
        if not any(own_head):
            return self.persrm.candidate_logits(hidden, cand).float()
        if all(own_head):
            return self.rm_runner.candidate_logits(hidden, cand).float()
        own_head = torch.tensor(own_head, device=cand.device)
        out = torch.empty(cand.shape, device=cand.device)
        out[~own_head] = self.persrm.candidate_logits(hidden[~own_head], cand[~own_head]).float()
        out[own_head] = self.rm_runner.candidate_logits(hidden[own_head], cand[own_head]).float()
        return out

    def _advance(self, active: _Active, token: int) -> StepEvent:
        active.tokens.append(token)
        req = active.request
        reason = None
        if token in self.eos_ids and not req.ignore_eos:
            reason = "eos"
            delta = active.text.finish()
        else:
            delta = active.text.add(token)
            if active.text.stopped:
                reason = "stop"
            elif len(active.tokens) >= req.max_new_tokens:
                reason = "length"
                delta += active.text.finish()
        result = None
        if reason is not None:
            result = GenerationResult(active.text.text, list(active.tokens), active.prompt_ids, reason, req.method,
                                      req.preference.label, req.beta if req.guided else 0.0)
        return StepEvent(active.request_id, token, delta, result)

    def _retire(self, done: list[_Active]) -> None:
        if not done:
            return
        keep_rows = {id(r): [] for r in self.runners}
        offsets = {id(r): self._offsets(r) for r in self.runners}
        for j, active in enumerate(self._active):
            if active in done:
                continue
            for runner in self.runners:
                size = len(self._rows_of(active, runner))
                keep_rows[id(runner)] += range(offsets[id(runner)][j], offsets[id(runner)][j] + size)
        for runner in self.runners:
            rows = keep_rows[id(runner)]
            runner.keep(rows)
            self._hidden[id(runner)] = self._hidden[id(runner)][rows] if rows else None
        self._active = [a for a in self._active if a not in done]

    # ---- conveniences ------------------------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest], progress=None) -> list[GenerationResult]:
        """Answer all requests as one batch; results in the order given. Other submitted requests advance
        alongside; their events wait for `claim`."""
        ids = [self.submit(r) for r in requests]
        results: dict[int, GenerationResult] = {}
        while len(results) < len(ids):
            for event in self._own_events(set(ids)):
                if event.result is not None:
                    results[event.request_id] = event.result
                    if progress:
                        progress(event.result)
        return [results[i] for i in ids]

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Text deltas of one request as they are decided (other submitted requests advance alongside; their
        events wait for `claim`)."""
        rid = self.submit(request)
        while True:
            for event in self._own_events({rid}):
                if event.delta:
                    yield event.delta
                if event.result is not None:
                    return

    def _own_events(self, ids: set[int]) -> list[StepEvent]:
        """One step's events of `ids`; the others' are kept for `claim`."""
        own = []
        for event in self.step():
            if event.request_id in ids:
                own.append(event)
            else:
                self._unclaimed.setdefault(event.request_id, []).append(event)
        return own


def end_of_turn_ids(generation_config, tokenizer=None) -> set[int]:
    """The tokens that end an answer: the model's generation config's end ids and the tokenizer's."""
    ids = generation_config.eos_token_id if generation_config is not None else None
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _context(model) -> int | None:
    """The most positions the model reads (prompt + answer), when its config says."""
    return getattr(model.config, "max_position_embeddings", None)
