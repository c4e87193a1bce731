"""`memrl/MemoryManager-v0`: the memory-manager environment as a gymnasium env.

- Observation: the prompt text of the next unit (turn or session): its dialogue, candidate facts and the
  related memories of the policy's own bank with per-prompt ids (`memrl.protocol.steps.render_manager_prompt`).
  `info["step"]` is the structured `ManagerStep`.
- Action: the completion text (Mem0's whole-list JSON or the compact op list, `memrl.protocol.parsing`).
- Reward: format, invalid ops, op agreement with gold ops (synthetic data), downstream QA probes answered by
  the frozen `answerer` passed in, the write-side temporal term and the size term; weights in
  `ManagerEnvConfig` (the terms are documented in `memrl.envs.manager.episode`).
- Termination: after the conversation's last unit (one conversation per episode); never truncated.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym

from memrl.envs.common import UnicodeText, as_conversations
from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.envs.manager.episode import ManagerEpisode, Plan, plan_episode
from memrl.protocol.steps import Answerer, messages_text
from memrl.rewards.trl_adapters import completion_text


class MemoryManagerEnv(gym.Env):
    """gymnasium env `memrl/MemoryManager-v0`. Observation: the prompt text; action: the completion text.

    reset(seed, options={"conversation_index": i}) starts conversation i (default: drawn with the seeded
    np_random). info carries the chat `messages`, the structured `step` (ManagerStep) and, after a step,
    the parse, rejected ops with reasons, the bank diff, gold ops, op pairs, probe answers and the reward
    breakdown. An empty string is the observation after the last step.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, conversations: Any = None, config: ManagerEnvConfig | dict | None = None,
                 answerer: Answerer | None = None, render_mode: str | None = None):
        self.conversations = as_conversations(conversations)
        self.config = as_manager_config(config)
        self.answerer = answerer
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = UnicodeText(self.config.max_observation_chars)
        self.action_space = UnicodeText(self.config.max_action_chars)
        self._plans: dict[int, Plan] = {}
        self.episode: ManagerEpisode | None = None
        self._last_obs = ""

    def _plan(self, i: int) -> Plan:
        if i not in self._plans:
            self._plans[i] = plan_episode(self.conversations[i], self.config)
        return self._plans[i]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "conversation_index" in options:
            i = int(options["conversation_index"])
            if not 0 <= i < len(self.conversations):
                raise IndexError(f"conversation_index {i} out of range (0..{len(self.conversations) - 1})")
            if not self._plan(i).units:
                raise ValueError(f"conversation {self.conversations[i].conversation_id!r} has no step with "
                                 f"candidate facts (facts={self.config.facts!r})")
        else:
            eligible = [j for j in range(len(self.conversations)) if self._plan(j).units]
            if not eligible:
                raise ValueError(f"no conversation has a step with candidate facts (facts={self.config.facts!r})")
            i = eligible[int(self.np_random.integers(len(eligible)))]
        episode_seed = int(self.np_random.integers(2**31 - 1))
        self.episode = ManagerEpisode(self.conversations[i], self.config, self.answerer, seed=episode_seed,
                                      plan=self._plan(i))
        step = self.episode.observe()
        self._last_obs = messages_text(step.messages)
        return self._last_obs, {"messages": [dict(m) for m in step.messages], "step": step,
                                "conversation_index": i, "conversation_id": step.conversation_id}

    def step(self, action: Any):
        if self.episode is None or self.episode.done:
            raise RuntimeError("step() called before reset() or after the episode ended")
        outcome = self.episode.apply(completion_text(action))
        terminated = self.episode.done
        info = dict(outcome.info)
        if terminated:
            self._last_obs = ""
            info.update(messages=[], step=None, episode=self.episode.summary())
        else:
            nxt = self.episode.observe()
            self._last_obs = messages_text(nxt.messages)
            info.update(messages=[dict(m) for m in nxt.messages], step=nxt)
        return self._last_obs, float(outcome.reward), bool(terminated), False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_obs
        return None
