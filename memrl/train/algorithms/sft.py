"""SFT (TRL's SFTTrainer): the policy imitates a teacher's traces, the loss on the completion only.

    algo: sft
    sft: {teacher: noisy_teacher, teacher_error_rate: 0.3}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from memrl.policies.baselines import ORACLE_BASELINES
from memrl.train.algorithms.base import TRLAlgorithm
from memrl.train.common import peft_config, quiet_console, trl_common_args
from memrl.train.data import answer_sft_rows, load_split, make_teacher, manager_sft_rows

if TYPE_CHECKING:
    from memrl.train.config import TrainConfig


@dataclass
class SFTSettings:
    """The `sft:` section of a recipe: whose traces the policy imitates."""

    teacher: str = "gold_ops"  # manager: gold_ops | noisy_teacher | add_only | rule_based ; answer: bm25 | oracle_evidence
    #                            | gold_answer ; or "transformers:PATH" (any backend)
    teacher_error_rate: float = 0.3  # noisy_teacher's share of deliberately wrong operations
    teacher_wrong_id_share: float = 0.5  # of those mistakes, the share aimed at a wrong memory (else UPDATE->ADD)
    compact_lm_head: bool = True  # the LM head scores only the answer positions on every device (memrl.train.sft);
    #                               false: TRL's own path, which off Triton (CPU) scores every prompt position too

    def validate(self) -> None:
        if not 0 <= self.teacher_error_rate <= 1:
            raise ValueError(f"sft.teacher_error_rate must be in [0, 1], got {self.teacher_error_rate}")


def sft_args(cfg: TrainConfig, out: Path, model=None):
    from trl import SFTConfig  # deferred: imports trl

    return SFTConfig(**trl_common_args(cfg, out, model), per_device_train_batch_size=cfg.batch_size,
                     max_length=cfg.model.max_positions, lr_scheduler_type="cosine", warmup_steps=min(10, cfg.max_steps // 10),
                     completion_only_loss=True, **cfg.trl)


def sft_trainer(cfg: TrainConfig, model, tok, rows, out: Path, callbacks: Sequence = ()):
    from datasets import Dataset  # deferred: imports datasets

    from memrl.train.sft import SFTTrainer  # deferred: imports trl

    return quiet_console(SFTTrainer(model=model, args=sft_args(cfg, out, model), train_dataset=Dataset.from_list(rows),
                                    processing_class=tok, peft_config=peft_config(cfg, model), callbacks=list(callbacks),
                                    compact_lm_head=cfg.sft.compact_lm_head))


class SFT(TRLAlgorithm):
    name = "sft"
    settings = SFTSettings
    implementation = "TRL SFTTrainer"
    rl = False
    former_keys = {"teacher": "sft.teacher", "teacher_error_rate": "sft.teacher_error_rate",
                   "teacher_wrong_id_share": "sft.teacher_wrong_id_share"}

    def trl_config(self) -> type:
        from trl import SFTConfig  # deferred: imports trl

        return SFTConfig

    def rows(self, cfg: TrainConfig) -> tuple[list[dict], None]:
        """Prompt-completion rows: the teacher's decision at every step (manager) or question (answer)."""
        convs = load_split(cfg.data.path, cfg.data.train_split, cfg.data.max_conversations)
        s = cfg.sft
        teacher = make_teacher(cfg.role, s.teacher, s.teacher_error_rate, cfg.seed, s.teacher_wrong_id_share)
        if cfg.role == "manager":
            return manager_sft_rows(convs, cfg.manager_env, teacher), None
        return answer_sft_rows(convs, cfg.answer_env, teacher), None

    def corpus(self, rows: Any) -> list[dict]:
        return rows

    def build_trainer(self, cfg, model, tok, rows, reward_funcs, out, log=None, callbacks=()):
        return sft_trainer(cfg, model, tok, rows, out, self.callbacks(cfg, log, callbacks))

    def oracle_inputs(self, cfg: TrainConfig) -> list[str]:
        return [f"teacher={cfg.sft.teacher} (reads gold)"] if cfg.sft.teacher in ORACLE_BASELINES else []

    def reward_description(self, cfg: TrainConfig) -> str:
        return f"teacher traces ({cfg.sft.teacher})"
