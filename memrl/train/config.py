"""`memrl train` recipes: one dataclass tree, loaded with `memrl.config.load_config`.

A recipe names an algorithm (sft | grpo | ppo), a role (manager | answer), a model, data, and the
environment whose rewards drive RL. TRL-specific extras go in `trl:` and are passed to `GRPOConfig` /
`SFTConfig` as they are, so any TRL knob is reachable without memrl having to mirror it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from memrl.envs.answer.config import AnswerEnvConfig
from memrl.envs.manager.config import ManagerEnvConfig
from memrl.protocol.steps import ROLES
from memrl.rewards.control import REWARD_CONTROLS

ALGOS = ("sft", "grpo", "ppo")


# PPO's knobs (memrl.train.ppo), here so that reading a config does not import torch.
@dataclass
class PPOSettings:
    """The `ppo:` section of a recipe: what only memrl's PPO has. The schedule, sampling and bookkeeping
    settings every algorithm shares are the recipe's top-level keys (PPO_FROM_RECIPE), never `ppo.*` keys."""

    ppo_epochs: int = 2  # passes over each rollout batch
    minibatch_size: int = 8  # completions (steps) per gradient step
    samples_per_prompt: int = 1  # single-step tasks: completions sampled per drawn prompt (batch_size / this
    #                              prompts per iteration; GRPO's shape with 8): a group's prompt is computed once
    # --- optimisation ---
    learning_rate: float = 1e-6  # actor lr; Memory-R1 uses 1e-6 on 3B-8B models, tiny models need ~1e-3
    critic_learning_rate: float = 1e-5  # critic lr; Memory-R1: 1e-5
    max_grad_norm: float = 1.0
    # --- PPO objective ---
    clip_range: float = 0.2  # policy ratio clip (Schulman et al. 2017)
    clip_range_value: float = 0.2  # value clip around the rollout values
    vf_coef: float = 0.5  # weight of the value loss in the critic's objective
    gamma: float = 1.0  # discount per token; 1.0 is the RLHF default
    lam: float = 0.95  # GAE lambda (Schulman et al. 2016)
    kl_coef: float = 0.05  # per-token KL penalty to the frozen reference (k1 estimator)
    whiten_advantages: bool = True
    # --- critic ---
    critic: str = "separate"  # "separate": own backbone copy + value head; "shared": head on the policy trunk


# PPOConfig field -> the TrainConfig key that sets it in a recipe (memrl.train.builder.ppo_config).
PPO_FROM_RECIPE = {"total_iterations": "max_steps", "batch_size": "batch_size",
                   "max_new_tokens": "max_completion_length", "temperature": "temperature", "seed": "seed",
                   "save_every": "save_steps", "log_every": "logging_steps"}


@dataclass
class PPOConfig(PPOSettings):
    """What memrl.train.ppo.PPOTrainer runs: the `ppo:` section plus the shared settings (PPO_FROM_RECIPE)."""

    # --- schedule ---
    total_iterations: int = 50  # PPO iterations (one rollout batch + its update epochs each)
    batch_size: int = 16  # completions per iteration (single-step) / episodes per iteration (multi-step)
    # --- sampling ---
    temperature: float = 1.0  # the only sampling knob: log-probs score the full softmax at this temperature,
    #                           so rollouts sample from exactly that (no top-k / top-p / penalties; see ppo.generate)
    max_new_tokens: int = 32
    # --- bookkeeping ---
    seed: int = 0
    save_every: int = 0  # iterations between checkpoints (0: only at the end)
    log_every: int = 1


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


@dataclass
class TrainConfig:
    # Keys that are not part of a recipe because another key governs them: load_config names the one to set.
    GOVERNED_KEYS: ClassVar[dict[str, str]] = {f"ppo.{k}": v for k, v in PPO_FROM_RECIPE.items()}

    algo: str = "grpo"  # sft | grpo | ppo
    role: str = "answer"  # manager | answer
    manager_mode: str = "snapshot"  # manager GRPO: "snapshot" (reward functions) | "episode" (rollout_func)
    output_dir: str = "runs/train"
    seed: int = 0
    resume: str = ""  # "" | "true" (latest checkpoint in output_dir) | a checkpoint path
    overwrite: bool = False  # a fresh run refuses an output_dir holding another run unless this is true
    init_from: str = ""  # start from this model directory (e.g. an SFT run's final_model) instead of model.path
    # -- SFT teacher: whose traces the policy imitates
    teacher: str = "gold_ops"  # manager: gold_ops | noisy_teacher | add_only | rule_based ; answer: bm25 | oracle_evidence
    #                            | gold_answer ; or "transformers:PATH" (any backend)
    teacher_error_rate: float = 0.3  # noisy_teacher's share of deliberately wrong operations
    teacher_wrong_id_share: float = 0.5  # of those mistakes, the share aimed at a wrong memory (else UPDATE->ADD)
    # -- optimisation (shared by the three algorithms)
    max_steps: int = 100
    learning_rate: float = 1e-3  # tiny models need ~1e-3; real models 1e-6 (Memory-R1)
    batch_size: int = 16  # completions per step (GRPO: prompts x num_generations)
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
    # -- GRPO (TRL)
    num_generations: int = 8
    beta: float = 0.0  # KL to the reference (TRL default 0: no reference model is kept)
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo | bnpo | ...: TRL's GRPO variants
    use_vllm: bool = False  # GPU only: TRL generates with vLLM (colocate mode)
    # -- GRPO and PPO on the transformers path
    shared_prefix: bool = True  # one prefill per prompt group: generation and the loss forward/backward compute a
    #                             group's prompt once (memrl.policies.prefix); false: TRL's own path
    # -- sub-configs
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    manager_env: ManagerEnvConfig = field(default_factory=ManagerEnvConfig)
    answer_env: AnswerEnvConfig = field(default_factory=AnswerEnvConfig)
    ppo: PPOSettings = field(default_factory=PPOSettings)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    report_to: list[str] = field(default_factory=lambda: ["none"])  # tensorboard | wandb | none (TRL's report_to)
    trl: dict = field(default_factory=dict)  # extra GRPOConfig / SFTConfig keyword arguments, passed through

    def validate(self) -> None:
        if self.model.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"model.dtype: {self.model.dtype!r} is not one of auto, float32, bfloat16")
        if self.algo not in ALGOS:
            raise ValueError(f"algo: {self.algo!r} is not one of {list(ALGOS)}")
        if self.role not in ROLES:
            raise ValueError(f"role: {self.role!r} is not one of {list(ROLES)}")
        if self.manager_mode not in ("snapshot", "episode"):
            raise ValueError(f"manager_mode: {self.manager_mode!r} is not snapshot or episode")
        for name in ("max_steps", "batch_size", "max_completion_length", "num_generations", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.algo == "grpo" and self.batch_size % self.num_generations:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                             f"({self.num_generations}): TRL groups completions by prompt")
        if not self.learning_rate > 0:  # also catches NaN
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.algo == "ppo" and (self.ppo.samples_per_prompt < 1 or self.batch_size % self.ppo.samples_per_prompt):
            raise ValueError(f"ppo.samples_per_prompt ({self.ppo.samples_per_prompt}) must be >= 1 and divide "
                             f"batch_size ({self.batch_size})")
        for name in ("learning_rate", "critic_learning_rate"):
            if not getattr(self.ppo, name) > 0:
                raise ValueError(f"ppo.{name} must be > 0, got {getattr(self.ppo, name)}")
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {self.save_steps}")
        if not 0 <= self.change_focus <= 1:
            raise ValueError(f"change_focus must be in [0, 1], got {self.change_focus}")
        if not 0 <= self.teacher_error_rate <= 1:
            raise ValueError(f"teacher_error_rate must be in [0, 1], got {self.teacher_error_rate}")
        if self.reward_control not in REWARD_CONTROLS:
            raise ValueError(f"reward_control: {self.reward_control!r} is not one of {list(REWARD_CONTROLS)}")
        if self.reward_control != "none" and self.algo == "sft":
            raise ValueError("reward_control applies to grpo and ppo (sft has no reward)")
        if self.reward_control != "none" and self.role == "manager" and self.manager_mode == "episode":
            raise ValueError("reward_control=shuffle is not implemented for manager_mode=episode "
                             "(its rewards come from environment rollouts); use manager_mode=snapshot")
        self.manager_env.validate()
        self.answer_env.validate()
        self.schedule.validate()
