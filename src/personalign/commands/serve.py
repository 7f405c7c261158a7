"""`personalign serve`: the OpenAI-compatible server (serving/). Settings are checked before the model loads.

    personalign serve                                   # the embedded SmolLM2 + its PersRM on 127.0.0.1:8000
    personalign serve --host 0.0.0.0 --api-key-file keys.txt --max-running 64
    personalign serve --profiles ~/.cache/personalign/profiles.db   # users' keys and saved preferences
"""

import sys
from pathlib import Path

from . import quiet_loading
from .flags import add_flags, flag_values
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
    store = ProfileStore(config.profiles) if config.profiles else None
    app, scheduler, model_name = build(config, args, store, offline_learner() if store else None)
    auth = "API key required" if config.keys() or store else "no API key: loopback only"
    if store:
        auth += f"; profiles {store.path}, {len(store.users())} users"
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

    return PreferenceLearner(judge.dimensions(), featurize)


def build(config: ServerConfig, args, store: ProfileStore | None = None, learner=None):
    """(app, started scheduler, served model name) for `config` over the models `args` names, with users'
    profiles from `store` and their weights learned by `learner` when given."""
    from ..api import load_engine
    from ..cli import _version
    from ..models import resolve_model_source
    from ..serving.app import create_app
    from ..serving.metrics import Metrics
    from ..serving.scheduler import Scheduler

    quiet_loading()
    engine = load_engine(args.base, args.persrm, policy=args.policy, device=args.device, dtype=args.dtype,
                         max_running=config.max_running, max_prefill_tokens=config.max_prefill_tokens,
                         max_prompt_tokens=config.max_prompt_tokens)
    model_name = config.served_model_name or Path(resolve_model_source(args.base)).name
    scheduler = Scheduler(engine, max_waiting=config.max_waiting, timeout_s=config.timeout, metrics=Metrics()).start()
    return create_app(scheduler, config, model_name, _version(), store, learner), scheduler, model_name
