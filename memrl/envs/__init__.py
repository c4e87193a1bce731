"""Gymnasium environments: the memory manager (multi-step) and the answer agent / context picker (single step).

Importing this package registers them:

    import gymnasium as gym, memrl.envs
    env = gym.make("memrl/MemoryManager-v0", conversations=convs, config={"unit": "turn"})
    env = gym.make("memrl/Answer-v0", conversations=convs, config={"mode": "picker"})

Observations and actions are text (the prompt; the completion); `info` carries the structured state.
"""

from gymnasium.envs.registration import register, registry

from memrl.envs.answer_env import (
    AnswerEnv,
    AnswerEnvConfig,
    AnswerRequest,
    Candidate,
    answer_dataset,
    build_requests,
    render_answer_prompt,
)
from memrl.envs.facts import CandidateFact, extract_facts
from memrl.envs.manager_env import (
    ManagerEnvConfig,
    ManagerEpisode,
    ManagerSnapshotReward,
    ManagerStep,
    MemoryManagerEnv,
    MemoryView,
    benchmark_env_step,
    drive,
    render_manager_prompt,
    score_manager_completion,
    snapshot_dataset,
)

for _id, _entry in (("memrl/MemoryManager-v0", "memrl.envs.manager_env:MemoryManagerEnv"),
                    ("memrl/Answer-v0", "memrl.envs.answer_env:AnswerEnv")):
    if _id not in registry:
        register(id=_id, entry_point=_entry)

__all__ = [
    "AnswerEnv", "AnswerEnvConfig", "AnswerRequest", "Candidate", "CandidateFact", "ManagerEnvConfig",
    "ManagerEpisode", "ManagerSnapshotReward", "ManagerStep", "MemoryManagerEnv", "MemoryView", "answer_dataset",
    "benchmark_env_step", "build_requests", "drive", "extract_facts", "render_answer_prompt",
    "render_manager_prompt", "score_manager_completion", "snapshot_dataset",
]
