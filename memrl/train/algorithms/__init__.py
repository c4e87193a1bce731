"""The training algorithms: one file each (its recipe section, its trainer construction, its own checks), one
registration line each. `algo: <name>` in a recipe picks one; `get(name)` returns it, an unknown name is an
error listing `names()`.

    from memrl.train import algorithms
    algorithms.get("grpo").build_trainer(...)

Adding an algorithm: write `memrl/train/algorithms/<name>.py` with an `Algorithm` subclass (memrl.train.algorithms.base)
and add its line below. Its `settings` dataclass becomes the recipe section `<name>:` (memrl.train.config).
"""

from memrl.train.algorithms import grpo, ppo, sft
from memrl.train.algorithms.base import Algorithm, TRLAlgorithm, get, names, register, registered, unregister

register(sft.SFT())
register(grpo.GRPO())
register(ppo.PPO())

__all__ = ["Algorithm", "TRLAlgorithm", "get", "names", "register", "registered", "unregister"]
