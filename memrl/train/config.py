"""`memrl train` recipes: one dataclass tree, loaded with `memrl.config.load_config`.

A recipe names an algorithm (`algo:`, one of memrl.train.algorithms: sft | grpo | ppo), a role (manager |
answer), a model, data, and the environment whose rewards drive RL. `TrainConfig` holds what every algorithm
shares, plus one section per registered algorithm with settings of its own (`sft:`, `grpo:`, `ppo:`), declared
in that algorithm's file. TRL-specific extras go in `trl:` and are passed to `GRPOConfig` / `SFTConfig` as they
are, so any TRL knob is reachable without memrl having to mirror it.

Keys that moved into a section keep working at their former top-level name (`num_generations` reads as
`grpo.num_generations`; `MOVED_KEYS`, from each algorithm's `former_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from memrl.envs.answer.config import AnswerEnvConfig
from memrl.envs.manager.config import ManagerEnvConfig
from memrl.policies.baselines import MANAGER_BASELINES
from memrl.protocol.steps import ROLES
from memrl.rewards.control import REWARD_CONTROLS
from memrl.train import algorithms
from memrl.train.algorithms.base import listed


@dataclass
class ModelConfig:
    path: str = "tiny"  # "tiny": build the offline tiny Llama into <output_dir>/base_model; else a local HF dir
    # -- the tiny model (used when path == "tiny")
    vocab_size: int = 2000
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 1024
    # -- LoRA through peft (off: full fine-tune)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    trust_remote_code: bool = False  # never on unless asked: it runs code shipped with the checkpoint
    dtype: str = "auto"  # auto: bfloat16 weights where the hardware multiplies bf16 natively (CPU AMX / AVX512-BF16,
    #                      CUDA) for models >= 50M parameters trained with LoRA; float32 otherwise | float32 | bfloat16


@dataclass
class DataConfig:
    path: str = ""  # a `memrl synth` output directory (train/validation/test JSONL) or a common-schema JSONL
    train_split: str = "train"
    eval_split: str = "validation"
    max_conversations: int = 0  # 0 = all


@dataclass
class ScheduleConfig:
    kind: str = "none"  # none | two_stage (Context-Picker) | alternate (Memory-R1) | joint
    # Context-Picker: stage I recall-oriented (relaxed margin), stage II precision-oriented (tight margin)
    stage1_margin: int = 3
    stage2_margin: int = 1
    switch_step: int = 0  # switch at this step (0 = half of max_steps) ...
    plateau_patience: int = 0  # ... or when the reward has not improved for this many logged steps (0 = off)
    # Memory-R1 alternation: train the manager with the answer agent frozen, then the reverse, for k rounds
    rounds: int = 2

    def validate(self) -> None:
        if self.kind not in ("none", "two_stage", "alternate", "joint"):
            raise ValueError(f"schedule.kind: {self.kind!r} is not one of none, two_stage, alternate, joint")


def _algorithm_sections(cls: type) -> type:
    """One section per registered algorithm that has settings of its own (`sft:`, `grpo:`, `ppo:`), typed by the
    dataclass its file declares; and the keys the algorithms govern or moved (GOVERNED_KEYS, MOVED_KEYS)."""
    moved: dict[str, list[str]] = {}
    for algo in algorithms.registered():
        if algo.settings is not None:
            cls.__annotations__[algo.name] = algo.settings
            setattr(cls, algo.name, field(default_factory=algo.settings))
        cls.GOVERNED_KEYS.update(algo.governed_keys)
        for old, new in algo.former_keys.items():
            moved.setdefault(old, []).append(new)
    cls.MOVED_KEYS.update({old: tuple(new) for old, new in moved.items()})
    return cls


@dataclass
@_algorithm_sections
class TrainConfig:
    # Keys that are not part of a recipe because another key governs them: load_config names the one to set.
    GOVERNED_KEYS: ClassVar[dict[str, str]] = {}
    # Keys that moved into an algorithm's section: load_config reads them under their new name.
    MOVED_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Keys added since runs were first saved, with the value that does what those runs did: a run directory's
    # config.yaml without them reads with these (resume, the demos' finished-run reuse). compact_lm_head is a
    # speed path with the same loss and gradients (tests/test_sft_compact.py).
    ADDED_KEYS: ClassVar[dict[str, Any]] = {"probed_only": False, "start_steps": 0, "sft.compact_lm_head": True}

    algo: str = "grpo"  # a registered algorithm (memrl.train.algorithms.names()): sft | grpo | ppo
    role: str = "answer"  # manager | answer
    manager_mode: str = "snapshot"  # manager RL: "snapshot" (reward functions) | "episode" (environment rollouts)
    output_dir: str = "runs/train"
    seed: int = 0
    resume: str = ""  # "" | "true" (latest checkpoint in output_dir) | a checkpoint path
    overwrite: bool = False  # a fresh run refuses an output_dir holding another run unless this is true
    init_from: str = ""  # start from this model directory (e.g. an SFT run's final_model) instead of model.path
    # -- optimisation (shared by the algorithms; PPO's learning rates are ppo.learning_rate / ppo.critic_learning_rate)
    max_steps: int = 100
    learning_rate: float = 1e-3  # tiny models need ~1e-3; real models 1e-6 (Memory-R1)
    batch_size: int = 16  # completions per step (GRPO: prompts x grpo.num_generations)
    max_completion_length: int = 32
    temperature: float = 1.0
    save_steps: int = 0  # checkpoint every N steps (0 = only the final model)
    logging_steps: int = 1
    max_train_rows: int = 0  # cap on RL rows (0 = all)
    episode_steps: int = 4  # manager episode mode: environment steps per GRPO/PPO episode window
    probe_answerer: str = ""  # manager RL: the frozen answer agent of the QA probes ("" = BM25 extractive;
    #                           a baseline name, or transformers:PATH for an LLM answer agent)
    reward_control: str = "none"  # "none" | "shuffle": the shuffled-reward control (rewards permuted across each
    #                               batch: same compute, no link between output and reward; memrl.rewards.control)
    change_focus: float = 0.0  # manager RL: share of rows from steps that UPDATE/DELETE a memory (0 = natural mix)
    probed_only: bool = False  # manager RL: keep only rows whose step has QA probes (the outcome reward is defined
    #   there; elsewhere a row scores only validity and bank size, which pulls toward writing nothing)
    start_steps: int = 0  # with probed_only: also keep each conversation's first N steps, where the bank is empty or
    #   small (what a manager meets at a conversation's start; there an op on an id is rejected, so the rows teach
    #   validity from an empty bank). Chosen by position in the dialogue, no label read.
    state_builder: str = "rule_based_text"  # manager RL: who writes the bank each snapshot row / episode window
    #   starts from: a manager baseline a deployed pipeline can run (rule_based_text: Mem0-style rules over the turn
    #   text; add_only), or "auto" = gold-op replay where the data has gold ops (ORACLE), else add_only
    # -- sub-configs
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    manager_env: ManagerEnvConfig = field(default_factory=ManagerEnvConfig)
    answer_env: AnswerEnvConfig = field(default_factory=AnswerEnvConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    report_to: list[str] = field(default_factory=lambda: ["none"])  # tensorboard | wandb | none (TRL's report_to)
    trl: dict = field(default_factory=dict)  # extra GRPOConfig / SFTConfig keyword arguments, passed through
    # -- one section per algorithm, added from the registry (_algorithm_sections): sft, grpo, ppo

    def validate(self) -> None:
        if self.model.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"model.dtype: {self.model.dtype!r} is not one of auto, float32, bfloat16")
        algorithm = algorithms.get(self.algo)
        if self.role not in ROLES:
            raise ValueError(f"role: {self.role!r} is not one of {list(ROLES)}")
        if self.manager_mode not in ("snapshot", "episode"):
            raise ValueError(f"manager_mode: {self.manager_mode!r} is not snapshot or episode")
        for name in ("max_steps", "batch_size", "max_completion_length", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:  # also catches NaN
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {self.save_steps}")
        if not 0 <= self.change_focus <= 1:
            raise ValueError(f"change_focus must be in [0, 1], got {self.change_focus}")
        if self.state_builder != "auto" and self.state_builder not in MANAGER_BASELINES:
            raise ValueError(f"state_builder: {self.state_builder!r} is not 'auto' or one of {sorted(MANAGER_BASELINES)}")
        if self.reward_control not in REWARD_CONTROLS:
            raise ValueError(f"reward_control: {self.reward_control!r} is not one of {list(REWARD_CONTROLS)}")
        if self.reward_control != "none" and not algorithm.rl:
            rl = listed([a.name for a in algorithms.registered() if a.rl], "and")
            raise ValueError(f"reward_control applies to {rl} ({self.algo} has no reward)")
        if self.reward_control != "none" and self.role == "manager" and self.manager_mode == "episode":
            raise ValueError("reward_control=shuffle is not implemented for manager_mode=episode "
                             "(its rewards come from environment rollouts); use manager_mode=snapshot")
        if self.probed_only and not (self.role == "manager" and algorithm.rl and self.manager_mode == "snapshot"):
            raise ValueError("probed_only selects manager RL snapshot rows: it needs role=manager, an RL algo and "
                             f"manager_mode=snapshot (got role={self.role}, algo={self.algo}, "
                             f"manager_mode={self.manager_mode})")
        if self.start_steps < 0:
            raise ValueError(f"start_steps must be >= 0, got {self.start_steps}")
        if self.start_steps and not self.probed_only:
            raise ValueError("start_steps adds a conversation's first steps to probed_only's rows; without "
                             "probed_only every step is a row already")
        for section in algorithms.registered():  # every section is checked, as every other sub-config is
            validate = getattr(getattr(self, section.name, None), "validate", None)
            if callable(validate):
                validate()
        algorithm.validate(self)
        self.manager_env.validate()
        self.answer_env.validate()
        self.schedule.validate()
