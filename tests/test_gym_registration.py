"""Both environments work like gymnasium envs: built from their id alone (defaults resolved inside: a seeded
synthetic dataset, the default configs, add-only banks for the answer environment), they pass gymnasium's
`check_env` and step with a random action from their action space."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import memrl.envs  # noqa: F401 - registers the ids
from memrl.policies.baselines import bank_builder

ENV_IDS = ["memrl/MemoryManager-v0", "memrl/Answer-v0"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_builds_from_its_id_alone_and_passes_check_env(env_id):
    env = gym.make(env_id)
    try:
        check_env(env.unwrapped, skip_render_check=False)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_steps_with_a_random_action(env_id):
    env = gym.make(env_id)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs
    for _ in range(3):
        action = env.action_space.sample()
        assert env.action_space.contains(action)
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False
        if terminated:
            break
    env.close()


def test_answer_env_default_banks_are_the_add_only_baselines():
    """Without manager=, the config's default manager (add_only) writes the banks: the same prompt as passing
    the add_only baseline explicitly."""
    default = gym.make("memrl/Answer-v0")
    explicit = gym.make("memrl/Answer-v0", manager=bank_builder("add_only"))
    for seed in (0, 1, 2):
        assert default.reset(seed=seed)[0] == explicit.reset(seed=seed)[0]


def test_answer_env_other_managers_still_need_passing_in():
    env = gym.make("memrl/Answer-v0", config={"manager": "gold_ops"})
    with pytest.raises(ValueError, match=r"manager='gold_ops'.*pass manager="):
        env.reset(seed=0)
