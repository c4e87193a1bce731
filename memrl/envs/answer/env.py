"""`memrl/Answer-v0`: the answer agent / context picker as a single-step gymnasium env.

- Observation: the prompt text of one question with its candidates (memories of a bank built by the manager
  passed in, turns, or time-filtered sessions), rendered by the answer mode (`memrl.protocol.modes`).
  `info["request"]` is the structured `AnswerRequest`, `info["row"]` the dataset row.
- Action: the completion text (ids, optional rationale, answer; parsed by the answer mode).
- Reward: the mode's preset from `memrl.envs.answer.candidates.make_reward` (accuracy, evidence set match or
  Context-Picker coverage, temporal consistency; -1 for malformed output), on the same row GRPO scores.
- Termination: after one step (one question per episode).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import gymnasium as gym

from memrl.envs.answer.candidates import CandidateBuilder, make_reward
from memrl.envs.answer.config import AnswerEnvConfig, as_answer_config
from memrl.envs.common import UnicodeText, as_conversations
from memrl.protocol import modes
from memrl.protocol.steps import Manager, messages_text
from memrl.rewards.trl_adapters import completion_text


class AnswerEnv(gym.Env):
    """gymnasium env `memrl/Answer-v0`: one question per episode, terminated after one step.

    reset(seed, options={"conversation_index": i, "question_index": j}) picks the question (default: drawn
    with the seeded np_random among eligible questions); the candidate order is seeded by the reset seed.
    info: `messages`, `request` (AnswerRequest), `row` (the dataset row); after the step: `parse`,
    `reward` breakdown.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, conversations: Any = None, config: AnswerEnvConfig | dict | None = None,
                 manager: Manager | None = None, render_mode: str | None = None):
        self.conversations = as_conversations(conversations)
        self.config = as_answer_config(config)
        self.builder = CandidateBuilder(self.conversations, self.config, manager)
        self._eligible = self.builder.eligible()
        if not self._eligible:
            raise ValueError("no eligible question in the conversations (check skip_categories)")
        self.reward_fn = make_reward(self.config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = UnicodeText(self.config.max_observation_chars)
        self.action_space = UnicodeText(self.config.max_action_chars)
        self._row: dict[str, Any] | None = None
        self._done = True
        self._last_obs = ""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "conversation_index" in options or "question_index" in options:
            ci, qi = int(options.get("conversation_index", 0)), int(options.get("question_index", 0))
            if not (0 <= ci < len(self.conversations) and 0 <= qi < len(self.conversations[ci].questions)):
                raise IndexError(f"no question {qi} in conversation {ci}")
        else:
            ci, qi = self._eligible[int(self.np_random.integers(len(self._eligible)))]
        shuffle_seed = int(self.np_random.integers(2**31 - 1))
        request, row = self.builder.request(ci, qi, seed=shuffle_seed)
        self._row, self._done = row, False
        self._last_obs = messages_text(request.messages or [])
        return self._last_obs, {"messages": [dict(m) for m in request.messages or []], "request": request,
                                "row": dict(row)}

    def step(self, action: Any):
        if self._done or self._row is None:
            raise RuntimeError("step() called before reset() or after the episode ended")
        text = completion_text(action)
        result = self.reward_fn.score(text, self._row)
        parse = modes.get(self.config.answer_mode).parse(text)
        self._done = True
        self._last_obs = ""
        reward = 0.0 if result is None else float(result.value)
        info = {"parse": asdict(parse), "reward": dict(result.breakdown) if result is not None else {},
                "question_id": self._row["question_id"], "gold_answer": self._row["answer"]}
        return "", reward, True, False, info

    def render(self) -> str | None:
        return self._last_obs if self.render_mode == "ansi" else None
