"""`ManagerEnvConfig`: every knob of the memory-manager environment (what a step shows, probes, reward weights)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from memrl.protocol.facts import FACT_SOURCES
from memrl.protocol.steps import MANAGER_PROMPTS

UNITS = ("turn", "session")
PROBE_MODES = ("linked", "complete", "none")


@dataclass
class ManagerEnvConfig:
    """Memory-manager environment. Every field is one knob; reward weights cite the paper they come from."""

    # -- what a step shows
    unit: str = "turn"  # "turn" | "session": one step per turn or per session
    facts: str = "turn"  # candidate facts: "turn" (the raw turn text: what a deployed agent sees) | "gold"
    #                      (ORACLE: gold ops / meta facts) | "auto" (ORACLE where the data has gold, else turn)
    repeat_facts: bool = True  # show restated facts (gold NOOP with text) so "don't store twice" is learnable
    skip_empty: bool = True  # units without candidate facts are auto-NOOPed and not shown
    prompt: str = "compact"  # "compact" (tiny models) | "memory_r1" (Mem0 update prompt, Memory-R1 Figs. 9-10)
    related_k: int = 5  # BM25 hits per candidate fact (Mem0 searches each fact with limit=5)
    related_per_owner: bool = False  # search only the fact subject's memories
    include_key_matches: bool = False  # ORACLE: also show current memories with the fact's gold world key
    max_related: int = 20  # cap on memories shown per step
    memory_order: str = "bank"  # "bank" (creation order) | "relevance" (key matches, then BM25 rank: the most
    #                             related memory is [0], which makes the decision local for tiny models)
    # -- downstream QA probes (Memory-R1's outcome reward)
    probes: str = "linked"  # "linked" | "complete" | "none"
    max_probes: int = 4  # probe questions answered per step (seeded sample when more qualify)
    probe_k: int = 30  # memories retrieved per speaker for the probe answerer (Memory-R1: 30 + 30)
    probe_skip_categories: list[str] = field(default_factory=lambda: ["adversarial"])  # names or ids
    qa_metric: str = "locomo_f1"  # memrl.rewards.accuracy.METRICS key
    # -- reward weights
    w_invalid: float = 0.5  # share of rejected ops (complement of Mem-alpha's r2)
    w_op: float = 0.0  # ORACLE reward: op agreement with gold ops (synthetic data only; ablations)
    w_qa: float = 1.0  # Memory-R1 outcome reward
    w_temporal: float = 0.0  # ORACLE reward: write-side temporal term built from gold ops (ablations)
    w_size: float = 0.05  # Mem-alpha compression weight beta = 0.05 (arXiv 2509.25911, section 4.1)
    format_penalty: float = -1.0  # reward of unparsable output (Memory-T1 / Context-Picker use -1)
    # -- spaces
    max_action_chars: int = 8192
    max_observation_chars: int = 1_000_000

    def validate(self) -> None:
        if self.memory_order not in ("bank", "relevance"):
            raise ValueError(f"ManagerEnvConfig.memory_order: {self.memory_order!r} is not one of ['bank', 'relevance']")
        for name, value, allowed in (("unit", self.unit, UNITS), ("facts", self.facts, FACT_SOURCES + ("auto",)),
                                     ("prompt", self.prompt, MANAGER_PROMPTS), ("probes", self.probes, PROBE_MODES)):
            if value not in allowed:
                raise ValueError(f"ManagerEnvConfig.{name}: {value!r} is not one of {list(allowed)}")
        for name in ("related_k", "max_related", "max_probes", "probe_k", "max_action_chars", "max_observation_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"ManagerEnvConfig.{name} must be >= 0, got {getattr(self, name)}")

    def oracle_inputs(self) -> list[str]:
        """The gold-derived inputs and rewards this config turns on (empty: a deployed agent's view)."""
        out = []
        if self.facts != "turn":
            out.append(f"facts={self.facts} (gold facts where the data has them)")
        if self.include_key_matches:
            out.append("include_key_matches (memories found by gold world key)")
        if self.w_op:
            out.append(f"w_op={self.w_op} (reward: agreement with gold ops)")
        if self.w_temporal:
            out.append(f"w_temporal={self.w_temporal} (reward built from gold ops)")
        return out

    def for_oracle_manager(self) -> "ManagerEnvConfig":
        """The view an oracle manager (gold_ops, noisy_teacher, rule_based with keys) needs: gold facts where the
        data has them and the memories carrying their world keys. Rewards are left as configured."""
        return replace(self, facts="auto" if self.facts == "turn" else self.facts, include_key_matches=True)

    @classmethod
    def oracle(cls, **overrides) -> "ManagerEnvConfig":
        """ORACLE preset (the defaults before the outcome protocol): gold facts, gold-key recall, and the gold-op reward
        terms. For upper bounds and labeled ablations only; never a headline result."""
        base = dict(facts="auto", include_key_matches=True, w_op=1.0, w_temporal=0.5)
        base.update(overrides)
        return cls(**base)

    def weights(self) -> dict[str, float]:
        return {"format": 1.0, "invalid": self.w_invalid, "op": self.w_op, "qa": self.w_qa,
                "temporal": self.w_temporal, "size": self.w_size}


def as_manager_config(config: ManagerEnvConfig | dict | None) -> ManagerEnvConfig:
    if config is None:
        config = ManagerEnvConfig()
    elif isinstance(config, dict):
        config = ManagerEnvConfig(**config)
    elif not isinstance(config, ManagerEnvConfig):  # an OmegaConf node of the schema
        from omegaconf import OmegaConf

        config = ManagerEnvConfig(**OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    config.validate()
    return config
