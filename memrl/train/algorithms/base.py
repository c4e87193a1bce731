"""What a training algorithm is, and the registry of them: one object per algorithm that knows its recipe
section, how its trainer is built, fitted and resumed, and its own checks. `memrl.train.builder`, `trainer`,
`guards` and `schedules` ask it (`get(cfg.algo)`) and never compare algorithm names.

    class Reinforce(Algorithm):
        name = "reinforce"
        def build_trainer(self, cfg, model, tok, rows, reward_funcs, out, log=None, callbacks=()):
            return MyTrainer(...)          # .train() runs cfg.max_steps steps; .model is the trained policy

`TRLAlgorithm` is the base of the algorithms TRL runs (SFT, GRPO): TrainerCallbacks, checkpoints that
`resume=true` continues, `report_to` loggers and `trl:` keys checked against TRL's config class.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from memrl.config import ConfigError
from memrl.train.common import check_trl_checkpoint, log_callback, rl_rows

if TYPE_CHECKING:
    from pathlib import Path

    from memrl.train.config import TrainConfig


class Algorithm:
    """A training algorithm. Subclass it in one file of memrl/train/algorithms/ and register an instance in that
    package's `__init__.py`; the defaults describe an RL algorithm run by memrl's own code."""

    name: ClassVar[str] = ""  # the recipe's `algo:` value
    settings: ClassVar[type | None] = None  # a dataclass: the recipe section `<name>:` (what only it has), or None
    implementation: ClassVar[str] = ""  # what runs it, for the model card ("TRL GRPOTrainer")
    rl: ClassVar[bool] = True  # learns from a reward: reward_control and the RL schedules apply
    trainer_callbacks: ClassVar[bool] = False  # takes transformers TrainerCallbacks (schedule.plateau_patience)
    checkpoints_last_step: ClassVar[bool] = False  # its last step is a checkpoint (schedule.kind=joint resumes there)
    governed_keys: ClassVar[dict[str, str]] = {}  # `<name>.KEY` that a shared top-level key sets (an error to set)
    former_keys: ClassVar[dict[str, str]] = {}  # a key's name before it moved into the section -> its name now

    # -- the recipe
    def validate(self, cfg: TrainConfig) -> None:
        """Checks of the section against the shared keys (TrainConfig.validate calls it); raise ValueError."""

    def check_recipe(self, cfg: TrainConfig) -> None:
        """Checks that need more than the schema (memrl.train.guards.check_recipe calls it before any work): memrl's
        own trainers take no TRL logger and no `trl:` key. Raises ConfigError."""
        reporters = [r for r in cfg.report_to if r != "none"]
        trl = [a.name for a in registered() if isinstance(a, TRLAlgorithm)]
        if reporters:
            raise ConfigError(f"report_to={list(cfg.report_to)}: memrl's {self.name.upper()} logs to metrics.jsonl "
                              f"and curves.png only; use report_to=[none] (TRL's loggers apply to {listed(trl, 'and')})")
        if cfg.trl:
            own = f"takes {self.name}.* keys" if self.settings is not None else "has no settings of its own"
            raise ConfigError(f"trl.{next(iter(cfg.trl))}: trl.* keys are passed to the TRL trainers "
                              f"({listed(trl, 'and')}); {self.name.upper()} is memrl's own trainer and {own}")

    # -- the run
    def rows(self, cfg: TrainConfig) -> tuple[Any, list | None]:
        """(training rows, reward functions): by default the role's RL rows and rewards (memrl.train.common)."""
        return rl_rows(cfg)

    def corpus(self, rows: Any) -> list[dict]:
        """The rows whose text trains the tiny model's tokenizer (model.path=tiny): the prompts."""
        return [dict(prompt=r["prompt"], completion=[]) for r in rows]

    def build_trainer(self, cfg: TrainConfig, model: Any, tok: Any, rows: Any, reward_funcs: list | None, out: Path,
                      log: Any = None, callbacks: Sequence = ()) -> Any:
        """The untrained trainer. `log` is the run's metrics writer (each row a dict with "step"; a "reward" entry
        feeds summary.json), `callbacks` transformers TrainerCallbacks (the schedules' plateau stop)."""
        raise NotImplementedError(f"algorithm {self.name!r} does not build a trainer")

    def fit(self, trainer: Any, checkpoint: str | None) -> None:
        """Train to cfg.max_steps, continuing `checkpoint` when given."""
        if checkpoint:
            raise ConfigError(f"resume: algo={self.name} cannot continue a checkpoint ({checkpoint})")
        trainer.train()

    def policy(self, trainer: Any) -> Any:
        """The trained model that becomes final_model."""
        return trainer.model

    # -- what the run directory says about it
    def shares_prefix(self, cfg: TrainConfig) -> bool:
        """summary.json's `shared_prefix`: one prefill per prompt group (memrl.policies.prefix)."""
        return False

    def oracle_inputs(self, cfg: TrainConfig) -> list[str]:
        """What of its own settings reads gold labels (summary.json's `oracle_inputs`)."""
        return []

    def reward_description(self, cfg: TrainConfig) -> str:
        """The model card's reward line."""
        if cfg.role == "manager":
            return "manager snapshot reward: " + json.dumps(cfg.manager_env.weights())
        return f"answer reward ({cfg.answer_env.answer_mode} preset {cfg.answer_env.weights or 'default'})"

    def __repr__(self) -> str:
        return f"<algorithm {self.name}>"


# transformers' `report_to` integrations and the function that says whether each one's package is installed.
REPORTERS = {"tensorboard": "is_tensorboard_available", "wandb": "is_wandb_available",
             "mlflow": "is_mlflow_available", "comet_ml": "is_comet_available",
             "trackio": "is_trackio_available", "clearml": "is_clearml_available",
             "dagshub": "is_dagshub_available", "dvclive": "is_dvclive_available",
             "swanlab": "is_swanlab_available", "codecarbon": "is_codecarbon_available",
             "neptune": "is_neptune_available", "azure_ml": "is_azureml_available",
             "flyte": "is_flytekit_available", "kubeflow": "is_kubeflow_available"}


class TRLAlgorithm(Algorithm):
    """An algorithm TRL runs: TrainerCallbacks, TRL checkpoints (`resume=true` continues them, the last step
    included), `report_to` loggers, and `trl:` keys passed to its TRL config class (`trl_config()`)."""

    trainer_callbacks = True
    checkpoints_last_step = True

    def trl_config(self) -> type:
        """TRL's config class of this trainer (SFTConfig, GRPOConfig): `trl:` keys are checked against it."""
        raise NotImplementedError

    def callbacks(self, cfg: TrainConfig, log: Any, callbacks: Sequence) -> list:
        """The metrics callback (when `log` is given) and the caller's callbacks."""
        return [*((log_callback(log, cfg.role),) if log is not None else ()), *callbacks]

    def check_recipe(self, cfg: TrainConfig) -> None:
        """`report_to` names a logger that exists and is installed; `trl:` names fields of TRL's config class."""
        from transformers.integrations import integration_utils  # deferred: heavy

        for r in cfg.report_to:
            if r in ("none", "all"):
                continue
            if r not in REPORTERS:
                raise ConfigError(f"report_to: unknown logger {r!r}; one of none, all, {', '.join(sorted(REPORTERS))}")
            available = getattr(integration_utils, REPORTERS[r], None)
            if available is not None and not available():
                raise ConfigError(f"report_to={r}: the {r} package is not installed (pip install {r}), "
                                  f"or use report_to=[none]")
        if cfg.trl:
            schema = self.trl_config()
            known = {f.name for f in dataclasses.fields(schema)}
            for key in cfg.trl:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                    hint = f"; did you mean trl.{close[0]}?" if close else ""
                    raise ConfigError(f"trl.{key}: not a {schema.__name__} field{hint}")

    def fit(self, trainer: Any, checkpoint: str | None) -> None:
        if checkpoint:
            check_trl_checkpoint(checkpoint)
        trainer.train(resume_from_checkpoint=checkpoint)


# ---------------------------------------------------------------------------------------------------------
# The registry (memrl/train/algorithms/__init__.py registers the algorithms, one line each)
_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Make `algorithm` the recipe value `algo: <algorithm.name>`; a name registered twice is an error."""
    if not algorithm.name:
        raise ValueError(f"{type(algorithm).__name__}: an algorithm needs a name")
    if algorithm.name in _REGISTRY:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered ({_REGISTRY[algorithm.name]!r})")
    _REGISTRY[algorithm.name] = algorithm
    return algorithm


def unregister(name: str) -> None:
    """Remove a registered algorithm (a test's toy algorithm, after the test)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Algorithm:
    """The algorithm registered as `name`; an unknown name is a ConfigError listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"algo: {name!r} is not one of {names()}") from None


def names() -> list[str]:
    """The registered algorithm names, in registration order."""
    return list(_REGISTRY)


def registered() -> list[Algorithm]:
    return list(_REGISTRY.values())


def listed(items: Sequence[str], word: str = "or") -> str:
    """'a', 'a or b', 'a, b or c' (error messages that list algorithms)."""
    items = list(items)
    if not items:
        return "none"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"
