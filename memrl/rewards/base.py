"""RewardResult: what every reward function returns (a value and its named parts)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RewardResult:
    """A reward value with the named parts it was computed from (for logs and env `info`)."""

    value: float
    breakdown: dict[str, float] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)
