"""`personalign serve`: the OpenAI-compatible server (serving/). Settings are checked before the model loads.

    personalign serve                                   # the embedded SmolLM2 + its PersRM on 127.0.0.1:8000
    personalign serve --host 0.0.0.0 --api-key-file keys.txt --max-running 64
    personalign serve --profiles ~/.cache/personalign/profiles.db   # users' keys and saved preferences
    personalign serve --backend vllm --tensor-parallel-size 2     # vLLM decodes (scripts/setup-vllm.sh)
"""

import hashlib
import sys
from pathlib import Path

from . import quiet_loading
from .flags import add_flags, flag_values
from ..errors import PersonalignError
from ..serving.config import ServerConfig
from ..serving.profiles import ProfileStore

SETTINGS = [f for f in ServerConfig.__dataclass_fields__]


def add_arguments(parser) -> None:
    parser.add_argument("--persrm", default=None,
                        help="PersRM: a saved PersRM dir, 'untrained', or a causal-LM dir or hub id (default: the "
                             "trained PersRM shipped for the embedded model; untrained for other bases)")
    parser.add_argument("--policy", default=None,
                        help="MetaAlign policy for the metaalign methods: a saved policy dir or 'untrained' "
                             "(default: the policy shipped for the embedded model, none for other bases)")
    add_flags(parser, ServerConfig, SETTINGS)


def run(args) -> int:
    import uvicorn

    config = ServerConfig(**flag_values(args, ServerConfig, SETTINGS))
    config.check_exposure()  # also reads the key file: a wrong path is said before the model loads
    if config.feedback_features == "persrm" and args.persrm == "untrained":
        raise PersonalignError("--feedback-features persrm needs a trained PersRM: an untrained one gives every "
                               "answer the reward 0; drop --persrm untrained or use --feedback-features offline")
    store = ProfileStore(config.profiles) if config.profiles else None
    app, scheduler, model_name = build(config, args, store)  # scheduler.stop also stops a vLLM child
    auth = "API key required" if config.keys() or store else "no API key: loopback only"
    if store:
        auth += f"; profiles {store.path}, {len(store.users())} users, learning from {app.state.learner.features}"
    print(f"personalign: serving {model_name} on http://{config.host}:{config.port} ({auth})", file=sys.stderr,
          flush=True)
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    finally:
        scheduler.stop()
    return 0


def offline_learner():
    """Users' weights over the six P-SOUPS dimensions, learned with the offline judge's scores as features."""
    from ..evaluation.judges.offline import OfflineJudge
    from ..serving.preference_learner import PreferenceLearner

    judge = OfflineJudge()

    def featurize(prompt: str, answers: list[str]) -> list[list[float]]:
        columns = [judge.score(d, [prompt] * len(answers), answers) for d in judge.dimensions()]
        return [list(row) for row in zip(*columns)]

    return PreferenceLearner(judge.dimensions(), featurize, features="offline")


def persrm_features(persrm: str | None, base_source: str, dimensions: tuple[str, ...], *, device=None, dtype=None):
    """The PersRM's summed reward of each answer under each dimension, on a copy of the base of its own: the
    engine's copy belongs to the scheduler thread, and scoring switches the PersRM's adapter on and off."""
    from ..api import load_persrm
    from ..models import load_causal_lm
    from ..training.answer_rewards import SummedRewardFeatures

    backbone, tokenizer = load_causal_lm(base_source, device=device, dtype=dtype)
    return SummedRewardFeatures(load_persrm(persrm, backbone, base_source, device=device, dtype=dtype), tokenizer,
                                dimensions)


def learner_for(config: ServerConfig, args, persrm_untrained: bool):
    """The PreferenceLearner of `config.feedback_features` (its `features` says which it chose)."""
    from ..models import resolve_model_source
    from ..serving.preference_learner import PreferenceLearner

    offline = offline_learner()
    if config.feedback_features == "offline" or (config.feedback_features == "auto" and persrm_untrained):
        return offline
    features = persrm_features(args.persrm, resolve_model_source(args.base), offline.dimensions,
                               device=args.device, dtype=args.dtype)
    return PreferenceLearner(offline.dimensions, features, features="persrm")


def build(config: ServerConfig, args, store: ProfileStore | None = None):
    """(app, started scheduler, served model name) for `config` over the models `args` names, with users'
    profiles from `store` and their weights learned from feedback as `config.feedback_features` says."""
    from ..cli import _version
    from ..models import resolve_model_source
    from ..serving.app import create_app
    from ..serving.metrics import Metrics
    from ..serving.scheduler import Scheduler

    quiet_loading()
    model_name = config.served_model_name or Path(resolve_model_source(args.base)).name
    engine, persrm_untrained = (vllm_engine if config.backend == "vllm" else transformers_engine)(config, args,
                                                                                                  model_name)
    learner = learner_for(config, args, persrm_untrained) if store else None
    scheduler = Scheduler(engine, max_waiting=config.max_waiting, timeout_s=config.timeout, metrics=Metrics()).start()
    return create_app(scheduler, config, model_name, _version(), store, learner), scheduler, model_name


def transformers_engine(config: ServerConfig, args, model_name: str):
    """(personalign's engine with the server's admission limits, whether its PersRM is untrained)."""
    from ..api import load_engine

    engine = load_engine(args.base, args.persrm, policy=args.policy, device=args.device, dtype=args.dtype,
                         max_running=config.max_running, max_prefill_tokens=config.max_prefill_tokens,
                         max_prompt_tokens=config.max_prompt_tokens)
    return engine, engine.persrm.is_untrained


def vllm_engine(config: ServerConfig, args, model_name: str):
    """(the vLLM backend over a child vLLM server, whether the PersRM is untrained): the PAD model directory is
    written once per base and PersRM (and their files' fingerprints) under personalign's home."""
    from transformers import GenerationConfig

    from ..api import UNTRAINED, default_persrm
    from ..decoding.engine import end_of_turn_ids
    from ..models import load_tokenizer, resolve_model_source
    from ..serving.vllm_backend import VllmEngine, VllmServer
    from ..vllm_plugin.export import exported_max_top_k

    if args.policy not in (None, UNTRAINED):
        raise PersonalignError("the vLLM backend runs no MetaAlign policy: serve with --backend transformers")
    base = resolve_model_source(args.base)
    persrm = args.persrm or default_persrm(base)
    model_dir = pad_model_dir(base, persrm)
    server = VllmServer(model_dir, Path(config.vllm_python), model_name,
                        tensor_parallel_size=config.tensor_parallel_size,
                        pipeline_parallel_size=config.pipeline_parallel_size, max_running=config.max_running,
                        extra_args=config.vllm_args).start()
    tokenizer = load_tokenizer(base)
    saved = (model_dir / "generation_config.json").is_file()  # save_pretrained writes it when the model has one
    end_ids = end_of_turn_ids(GenerationConfig.from_pretrained(model_dir) if saved else None, tokenizer)
    engine = VllmEngine(server.url, model_name, tokenizer, context=server.max_model_len(),
                        max_prompt_tokens=config.max_prompt_tokens, max_top_k=exported_max_top_k(model_dir),
                        end_ids=end_ids, on_close=server.stop)
    return engine, persrm == UNTRAINED


def pad_model_dir(base: str, persrm: str) -> Path:
    """The PAD model directory vLLM loads for `base` and `persrm` (resolved sources), written on first use under
    personalign's home, one per base and PersRM and their files' fingerprints (a retrained PersRM gets a new one)."""
    from ..evaluation.identity import dir_identity
    from ..models import personalign_home
    from ..vllm_plugin.export import export_pad_model

    identity = "\0".join(dir_identity(p) if Path(p).is_dir() else p for p in (base, persrm))
    model_dir = personalign_home() / "vllm" / hashlib.sha256(identity.encode()).hexdigest()[:16]
    if not model_dir.is_dir():
        print(f"personalign: writing the PAD model for vLLM into {model_dir}", file=sys.stderr, flush=True)
        export_pad_model(model_dir, base, persrm)
    return model_dir
