"""Gymnasium environments: the memory manager (multi-step) and the answer agent / context picker (single step).

Importing this package registers them. Both build from their id alone (`gym.make("memrl/Answer-v0")`): a few
seeded synthetic conversations, the default configs, and for the answer environment banks written by the
add-only manager (`memrl.protocol.add_only`, the config's default `manager`, which needs no policy). The
frozen answerer of the manager's QA probes and any other manager that builds the answer environment's banks
are passed in (environments never look up a policy):

    import gymnasium as gym, memrl.envs
    from memrl.policies.baselines import BM25Answerer, bank_builder
    env = gym.make("memrl/MemoryManager-v0", conversations=convs, config={"unit": "turn"}, answerer=BM25Answerer())
    env = gym.make("memrl/Answer-v0", conversations=convs, config={"answer_mode": "memory_r1"}, manager=bank_builder("auto"))

Observations and actions are text (the prompt; the completion); `info` carries the structured state.
"""

from gymnasium.envs.registration import register, registry

from memrl.envs.answer.candidates import CandidateBuilder, answer_dataset, build_requests
from memrl.envs.answer.config import AnswerEnvConfig
from memrl.envs.answer.env import AnswerEnv
from memrl.envs.manager.config import ManagerEnvConfig
from memrl.envs.manager.env import MemoryManagerEnv
from memrl.envs.manager.episode import ManagerEpisode, drive_manager

for _id, _entry in (("memrl/MemoryManager-v0", "memrl.envs.manager.env:MemoryManagerEnv"),
                    ("memrl/Answer-v0", "memrl.envs.answer.env:AnswerEnv")):
    if _id not in registry:
        register(id=_id, entry_point=_entry)

__all__ = [
    "AnswerEnv", "AnswerEnvConfig", "CandidateBuilder", "ManagerEnvConfig", "ManagerEpisode", "MemoryManagerEnv",
    "answer_dataset", "build_requests", "drive_manager",
]
