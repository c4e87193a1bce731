"""Episode mode for the memory manager: multi-step windows for TRL's GRPO (`rollout_func`) and for our PPO.

Snapshot mode scores one completion against a frozen state; episode mode lets the policy's own writes at
step t shape what it sees and earns at steps t+1 ... t+k-1, so credit flows across sessions.

A *window* is `episode_steps` consecutive steps of one conversation (non-overlapping, the last one may be
shorter). The memory state at the window start is built once by the recipe's `state_builder` (rule_based_text by
default; "auto" = gold-op replay on conversations with gold ops, else add-only, as `snapshot_dataset`) and copied for every
rollout, so the G samples of a GRPO group start from the same bank (Memory-R2's fairness point).

GRPO (`make_episode_rollout`): the dataset has one row per window; its `prompt` is a plain string naming the
window (TRL hands prompts to `rollout_func` already repeated num_generations times). For each row the
rollout returns

    prompt_ids      the first step's prompt, chat-templated with the generation prompt
    completion_ids  step-1 model tokens | env tokens | step-2 model tokens | env tokens | ...
    env_mask        1 on model tokens, 0 on env tokens (the next step's prompt as a new user turn)
    logprobs        per completion token under the sampling policy (0.0 on env tokens)
    episode_reward  the summed environment rewards of the window (read by `EpisodeReward`)

Env tokens are what the tokenizer's chat template puts between the end of the assistant turn and the start
of the next one, so the sequence the loss sees is exactly a rendered multi-turn chat. The window is cut
when the next step would not fit in the model's positions.

PPO (`make_env_factory`): `WindowedManagerEnv` is a `MemoryManagerEnv` whose reset draws a window and whose
episode is truncated at the window's end; `memrl.train.ppo.EnvRollouts` steps it and runs GAE across steps.

The window length is `cfg.episode_steps` (default 4).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from memrl.config import ConfigError
from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.envs.manager.env import MemoryManagerEnv
from memrl.envs.manager.episode import ManagerEpisode, drive_manager, plan_episode
from memrl.policies.baselines import (
    ANSWER_BASELINES,
    MANAGER_BASELINES,
    BM25Answerer,
    bank_builder,
    make_baseline,
)
from memrl.policies.llm import make_policy
from memrl.protocol import modes
from memrl.protocol.generation import SamplingParams
from memrl.protocol.steps import messages_text
from memrl.train.data import load_split

if TYPE_CHECKING:
    from memrl.data.schema import Conversation
    from memrl.train.config import TrainConfig

EPISODE_STEPS_DEFAULT = 4
PROMPT_PREFIX = "memrl episode window "  # the dataset's placeholder prompt: this prefix + JSON
PROBE_MAX_TOKENS = 32  # new tokens of an LLM probe answerer (answers are a few words after **Answer:**)
BANK_MANAGER_MAX_TOKENS = 128  # new tokens of an LLM manager building answer-side banks


def episode_steps(cfg: Any) -> int:
    k = int(getattr(cfg, "episode_steps", EPISODE_STEPS_DEFAULT))
    if k < 1:
        raise ValueError(f"episode_steps must be >= 1, got {k}")
    return k


# ---------------------------------------------------------------------------------------------------------
# Partners: the frozen answer agent that scores the manager's probes, the manager that builds answer banks
def probe_answerer(cfg: Any):
    """The answerer for the manager's QA probes: `cfg.probe_answerer` ("" = the BM25 extractive answerer;
    a baseline name; or a backend spec / checkpoint directory, read greedily as an LLMAnswerer)."""
    spec = str(getattr(cfg, "probe_answerer", "") or "")
    if not spec:
        return BM25Answerer()

    if spec in ANSWER_BASELINES:
        return make_baseline(spec)

    mode = modes.get(cfg.answer_env.answer_mode)
    mode = mode if mode.answers else modes.DEFAULT  # a picker gives no answer: probes are read in the default mode
    backend = _backend_spec(spec)
    trained = trained_answer_mode(backend.split(":", 1)[1])
    if trained is not None and trained != mode.name:
        # Read in another mode's prompt, a trained answer agent's output mostly fails to parse, and every QA probe
        # scores 0: a manager run with no QA signal that still exits 0. Refuse instead.
        if trained in modes.names() and not modes.get(trained).answers:
            raise ConfigError(f"probe_answerer={spec} was trained in answer mode {trained!r}, which selects evidence "
                              f"and gives no answer: the QA probes need an answering checkpoint")
        raise ConfigError(f"probe_answerer={spec} was trained in answer mode {trained!r}, but this recipe reads the "
                          f"QA probes in {mode.name!r} (answer_env.answer_mode): its answers would not parse and every "
                          f"probe would score 0. Set answer_env.answer_mode={trained}")
    return make_policy(backend, "answer", answer_mode=mode.name,
                       sampling=SamplingParams(temperature=0.0, max_tokens=PROBE_MAX_TOKENS))


def trained_answer_mode(path: str) -> str | None:
    """The answer mode a memrl answer-agent checkpoint was trained in (answer_env.answer_mode of the run whose
    final_model or checkpoint-N `path` is, read from the run's config.yaml); None for anything else."""
    run_config = Path(path).parent / "config.yaml"
    if not Path(path).is_dir() or not run_config.is_file():
        return None
    try:
        saved = OmegaConf.load(run_config)
    except Exception:  # not a memrl run's config: nothing to check against
        return None
    if OmegaConf.select(saved, "role") != "answer":
        return None
    mode = OmegaConf.select(saved, "answer_env.answer_mode")
    return str(mode) if mode else None


def bank_manager(cfg: Any):
    """The manager that builds the answer agent's banks: `cfg.answer_env.manager` when it names an LLM
    (backend spec or checkpoint directory); for baseline names, `bank_builder(name)`."""
    spec = str(cfg.answer_env.manager or "auto")
    if spec == "auto" or spec in MANAGER_BASELINES:
        return bank_builder(spec)

    return make_policy(_backend_spec(spec), "manager", prompt=cfg.answer_env.bank.prompt,
                       sampling=SamplingParams(temperature=0.0, max_tokens=BANK_MANAGER_MAX_TOKENS))


def _backend_spec(spec: str) -> str:
    return spec if ":" in spec.split("/")[0] else f"transformers:{spec}"


# ---------------------------------------------------------------------------------------------------------
# Windows
@dataclass(frozen=True)
class Window:
    conversation_index: int
    start: int  # first step (plan unit index)
    end: int  # one past the last step

    def prompt(self, conversation_id: str) -> str:
        return PROMPT_PREFIX + json.dumps({"conversation": self.conversation_index, "start": self.start,
                                           "end": self.end, "id": conversation_id})


def parse_window_prompt(prompt: Any) -> tuple[int, int]:
    """(conversation index, start step) from a dataset prompt (a string, or chat messages holding it)."""
    text = prompt[-1]["content"] if isinstance(prompt, list) else prompt
    if not isinstance(text, str) or not text.startswith(PROMPT_PREFIX):
        raise ValueError(f"not an episode-window prompt (expected '{PROMPT_PREFIX}{{json}}'): {str(text)[:80]!r}")
    d = json.loads(text[len(PROMPT_PREFIX):])
    return int(d["conversation"]), int(d["start"])


class EpisodeWindows:
    """The windows of a set of conversations and the memory state at each window start (built lazily, once
    per conversation, by driving the reference manager without scoring)."""

    def __init__(self, conversations: Sequence[Conversation], config: ManagerEnvConfig, steps: int,
                 answerer: Any = None, seed: int = 0, builder: str = "auto"):
        self.conversations = list(conversations)
        self.builder = builder  # who writes the window-start banks (TrainConfig.state_builder)
        self.config = config
        self.steps = steps
        self.answerer = answerer
        self.seed = seed
        self.plans = [plan_episode(c, config) for c in self.conversations]
        self.windows = [Window(ci, s, min(s + steps, len(p.units)))
                        for ci, p in enumerate(self.plans) for s in range(0, len(p.units), steps)]
        if not self.windows:
            raise ValueError("episode mode: no conversation has a step with candidate facts "
                             f"(manager_env.facts={config.facts!r}, {len(self.conversations)} conversations)")
        self._index = {(w.conversation_index, w.start): w for w in self.windows}
        self._starts: dict[int, dict[int, tuple[Any, Any, int]]] = {}

    def window(self, conversation_index: int, start: int) -> Window:
        try:
            return self._index[(conversation_index, start)]
        except KeyError:
            raise ValueError(f"no episode window starts at step {start} of conversation {conversation_index}") from None

    def _start_states(self, ci: int) -> dict[int, tuple[Any, Any, int]]:
        if ci not in self._starts:

            conv = self.conversations[ci]
            snaps: dict[int, tuple[Any, Any, int]] = {}

            def keep(ep: ManagerEpisode, step) -> None:
                if step.index % self.steps == 0:
                    snaps[step.index] = (ep.bank.copy(), ep.index.fork(), ep.facts_seen)

            ref = bank_builder(self.builder)(conv)  # "auto": gold-op replay where conv has gold ops, else add_only
            drive_manager([conv], ref, self.config, score=False, before_apply=keep, seed=self.seed)
            self._starts[ci] = snaps
        return self._starts[ci]

    def episode(self, w: Window, seed: int | None = None) -> ManagerEpisode:
        """A fresh episode positioned at the window start (its own copy of the bank and index)."""
        bank, index, facts_seen = self._start_states(w.conversation_index)[w.start]
        ep = ManagerEpisode(self.conversations[w.conversation_index], self.config, self.answerer,
                            seed=self.seed if seed is None else seed, plan=self.plans[w.conversation_index])
        ep.bank, ep.index, ep.cursor, ep.facts_seen = bank.copy(), index.fork(), w.start, facts_seen
        return ep


def _windows_for(cfg: TrainConfig, answerer: Any = None) -> EpisodeWindows:

    convs = load_split(cfg.data.path, cfg.data.train_split, cfg.data.max_conversations)
    env_cfg = as_manager_config(cfg.manager_env)
    return EpisodeWindows(convs, env_cfg, episode_steps(cfg), answerer if answerer is not None else probe_answerer(cfg),
                          seed=cfg.seed, builder=cfg.state_builder)


# ---------------------------------------------------------------------------------------------------------
# Chat-template glue between turns
_PLACEHOLDER = "MEMRLPLACEHOLDER7F3A"


def next_user_content(messages: Sequence[dict[str, str]]) -> str:
    """A step's prompt as one user turn: the system instructions were given once, at the top."""
    return messages_text([m for m in messages if m.get("role") != "system"] or list(messages))


def turn_glue_ids(tokenizer: Any, head: Sequence[dict[str, str]], user_content: str, last_model_ids: Sequence[int],
                  eos_ids: Sequence[int]) -> list[int]:
    """Token ids that close the assistant turn the model just wrote and open the next user turn plus the
    generation prompt, as the tokenizer's chat template renders them.

    Rendered as the difference of two templated chats that share `head` (the first step's messages): with
    an assistant placeholder, and with the placeholder followed by the user turn. The model's own EOS, if
    it emitted one, already closed the turn, so that much of the closing text is dropped.
    """
    msgs = [dict(m) for m in head] + [{"role": "assistant", "content": _PLACEHOLDER}]
    a = tokenizer.apply_chat_template(msgs, tokenize=False)
    b = tokenizer.apply_chat_template(msgs + [{"role": "user", "content": user_content}], tokenize=False,
                                      add_generation_prompt=True)
    if _PLACEHOLDER not in a:
        raise ValueError("the chat template dropped the assistant message; episode mode needs a template that "
                         "renders assistant turns")
    closing = a[a.rindex(_PLACEHOLDER) + len(_PLACEHOLDER):]
    if b.startswith(a):
        opening = b[len(a):]
    else:  # not prefix-preserving (e.g. templates that rewrite earlier turns): render the new turn alone
        opening = tokenizer.apply_chat_template([{"role": "user", "content": user_content}], tokenize=False,
                                                add_generation_prompt=True)
    if last_model_ids and last_model_ids[-1] in set(eos_ids):
        eos_text = tokenizer.decode([last_model_ids[-1]], skip_special_tokens=False)
        if eos_text and closing.startswith(eos_text):
            closing = closing[len(eos_text):]
    return list(tokenizer(closing + opening, add_special_tokens=False)["input_ids"])


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


# ---------------------------------------------------------------------------------------------------------
# Sampling with log-probabilities
def sample_with_logprobs(model: Any, tokenizer: Any, inputs: Sequence[Sequence[int]], max_new: Sequence[int],
                         temperature: float, top_p: float, seed: int) -> list[tuple[list[int], list[float]]]:
    """One sampled continuation per input (left-padded batch), cut at EOS or at that row's `max_new`.
    Log-probabilities are log_softmax(logits / T) of the chosen tokens, as TRL computes them."""
    import torch
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = _eos_ids(model, tokenizer)
    width = max(len(x) for x in inputs)
    ids = torch.full((len(inputs), width), pad, dtype=torch.long)
    att = torch.zeros_like(ids)
    for i, x in enumerate(inputs):
        ids[i, width - len(x):] = torch.tensor(list(x), dtype=torch.long)
        att[i, width - len(x):] = 1
    greedy = temperature <= 0
    gen = GenerationConfig(max_new_tokens=max(max_new), do_sample=not greedy, num_beams=1,
                           **({} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0,
                                                 "min_p": 0.0}),
                           repetition_penalty=1.0, eos_token_id=eos, pad_token_id=pad, output_logits=True,
                           return_dict_in_generate=True, use_cache=True)
    device = next(model.parameters()).device
    cuda = [device.index or 0] if device.type == "cuda" else []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            torch.manual_seed(seed)
            res = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), generation_config=gen)
    finally:
        model.train(was_training)
    new = res.sequences[:, width:]
    T = 1.0 if greedy else float(temperature)
    steps = []
    for s, logits in enumerate(res.logits):
        scaled = logits.float() / T
        steps.append(scaled.gather(1, new[:, s:s + 1]).squeeze(1) - torch.logsumexp(scaled, dim=-1))
    lps = torch.stack(steps, dim=1).cpu().tolist() if steps else [[] for _ in inputs]
    out = []
    eos_set = set(eos)
    for i, row in enumerate(new.cpu().tolist()):
        cut = min(max_new[i], len(row))
        for j, t in enumerate(row[:cut]):
            if t in eos_set:
                cut = j + 1
                break
        out.append((row[:cut], lps[i][:cut]))
    return out


# ---------------------------------------------------------------------------------------------------------
# GRPO: the rollout function and its reward
class EpisodeRollout:
    """TRL `rollout_func(prompts, trainer) -> dict` driving `ManagerEpisode` windows (see the module doc)."""

    def __init__(self, windows: EpisodeWindows, seed: int = 0):
        self.windows = windows
        self.seed = seed
        self.__name__ = "episode_rollout"

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        from trl.models import unwrap_model_for_generation

        tok = getattr(trainer, "_tokenizer", None) or trainer.processing_class
        args = trainer.args
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=getattr(args, "ds3_gather_for_generation", True),
                                         gradient_checkpointing_kwargs=getattr(args, "gradient_checkpointing_kwargs",
                                                                               None)) as model:
            def generate(inputs, max_new, t):
                seed = (self.seed * 1_000_003 + int(trainer.state.global_step) * 7919
                        + int(trainer.accelerator.process_index) * 104_729 + t)
                if getattr(trainer, "use_vllm", False):
                    _, comp, lps, _ = trainer.vllm_generation.generate(prompts=[list(x) for x in inputs], images=None,
                                                                       num_generations=1)
                    return [(c[:m], [lp[0] for lp in lp_seq][:m]) for c, lp_seq, m in zip(comp, lps, max_new)]
                return sample_with_logprobs(model, tok, inputs, max_new, float(args.temperature),
                                            float(getattr(args, "top_p", 1.0)), seed)

            max_len = _max_positions(model, args)
            return self.rollout(prompts, tok, generate, int(args.max_completion_length), max_len, _eos_ids(model, tok))

    def rollout(self, prompts: list[Any], tok: Any, generate: Callable, max_new_tokens: int, max_len: int,
                eos_ids: Sequence[int]) -> dict[str, list]:
        """The loop, with generation passed in (so the same code serves HF generate and vLLM)."""
        wins = [self.windows.window(*parse_window_prompt(p)) for p in prompts]
        # One episode per row; the episode seed depends on the window only, so a group shares its probes.
        eps = [self.windows.episode(w) for w in wins]
        n = len(wins)
        heads = [ep.observe().messages for ep in eps]
        from memrl.policies.backends import render_prompt  # deferred: imports torch

        prompt_ids = [render_prompt(tok, h, f"window {w}") for h, w in zip(heads, wins)]
        completion: list[list[int]] = [[] for _ in range(n)]
        mask: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        reward = [0.0] * n
        terms: list[dict[str, float]] = [{} for _ in range(n)]
        nsteps = [0] * n
        cut = [False] * n
        for i, w in enumerate(wins):
            if len(prompt_ids[i]) + 1 > max_len:
                raise ValueError(f"episode window {w}: the first prompt is {len(prompt_ids[i])} tokens, more than the "
                                 f"model's {max_len} positions; lower manager_env.related_k / max_related or use a "
                                 "model with more positions")
        live = list(range(n))
        for t in range(self.windows.steps):
            if t > 0:  # the environment's turn: the next step's prompt as a user message (masked out)
                still = []
                for i in live:
                    glue = turn_glue_ids(tok, heads[i], next_user_content(eps[i].observe().messages), completion[i],
                                         eos_ids)
                    if len(prompt_ids[i]) + len(completion[i]) + len(glue) + 1 > max_len:
                        cut[i] = True  # the window ends here: the next step does not fit
                        continue
                    completion[i] += glue
                    mask[i] += [0] * len(glue)
                    logps[i] += [0.0] * len(glue)
                    still.append(i)
                live = still
            if not live:
                break
            inputs = [prompt_ids[i] + completion[i] for i in live]
            max_new = [max(1, min(max_new_tokens, max_len - len(x))) for x in inputs]
            outs = generate(inputs, max_new, t)
            texts = tok.batch_decode([ids for ids, _ in outs], skip_special_tokens=True)
            for i, (ids, lps), text in zip(live, outs, texts):
                completion[i] += ids
                mask[i] += [1] * len(ids)
                logps[i] += [float(x) for x in lps]
                outcome = eps[i].apply(text)
                reward[i] += float(outcome.reward)
                nsteps[i] += 1
                for k, v in outcome.breakdown.items():
                    terms[i][k] = terms[i].get(k, 0.0) + float(v)
            live = [i for i in live if not eps[i].done and eps[i].cursor < wins[i].end]
        return {"prompt_ids": prompt_ids, "completion_ids": completion, "logprobs": logps, "env_mask": mask,
                "episode_reward": reward, "episode_num_steps": nsteps, "episode_cut": cut,
                "episode_terms": [json.dumps(d) for d in terms]}


def _max_positions(model: Any, args: Any) -> int:
    cfg = getattr(model, "config", None)
    n = int(getattr(cfg, "max_position_embeddings", 0) or 0) or 1 << 30
    vllm_len = getattr(args, "vllm_max_model_length", None) if getattr(args, "use_vllm", False) else None
    return min(n, int(vllm_len)) if vllm_len else n


class EpisodeReward:
    """TRL reward function for episode mode: the window's summed environment reward (computed during the
    rollout), with the per-term sums and the window lengths logged as metrics."""

    __name__ = "episode_reward"

    def __call__(self, prompts: Any = None, completions: Any = None, episode_reward: Sequence[float] | None = None,
                 **kw: Any) -> list[float | None]:
        if episode_reward is None:
            raise ValueError("EpisodeReward needs the `episode_reward` column that EpisodeRollout returns; "
                             "use it with manager_mode=episode")
        log_metric = kw.get("log_metric")
        if callable(log_metric):
            steps = kw.get("episode_num_steps") or []
            if steps:
                log_metric("episode/steps", sum(steps) / len(steps))
            cut = kw.get("episode_cut") or []
            if cut:
                log_metric("episode/cut_ratio", sum(bool(c) for c in cut) / len(cut))
            sums: dict[str, list[float]] = {}
            for t in kw.get("episode_terms") or []:
                for k, v in json.loads(t).items():
                    sums.setdefault(k, []).append(v)
            for k, vs in sums.items():
                log_metric(f"episode/{k}", sum(vs) / len(vs))
        return [float(r) for r in episode_reward]


def make_episode_rollout(cfg: TrainConfig, answerer: Any = None):
    """(dataset, rollout_func) for GRPO episode mode; score with `EpisodeReward()`.

    One row per window (capped at `max_train_rows`, seeded); columns `prompt` (the window's placeholder),
    `conversation_id`, `conversation_index`, `start_step`, `end_step`.
    """
    import datasets

    windows = _windows_for(cfg, answerer)
    rows = [{"prompt": w.prompt(windows.conversations[w.conversation_index].conversation_id),
             "conversation_id": windows.conversations[w.conversation_index].conversation_id,
             "conversation_index": w.conversation_index, "start_step": w.start, "end_step": w.end}
            for w in windows.windows]
    if cfg.max_train_rows and len(rows) > cfg.max_train_rows:
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.max_train_rows))
        rows = [rows[i] for i in keep]
    return datasets.Dataset.from_list(rows), EpisodeRollout(windows, seed=cfg.seed)


# ---------------------------------------------------------------------------------------------------------
# PPO: a windowed environment
class WindowedManagerEnv(MemoryManagerEnv):
    """`MemoryManagerEnv` over episode windows: reset draws a window (seeded) or takes
    `options={"window": i}`; the episode is truncated at the window's end."""

    def __init__(self, windows: EpisodeWindows, render_mode: str | None = None):
        super().__init__(windows.conversations, windows.config, windows.answerer, render_mode=render_mode)
        self.windows = windows
        self._plans = dict(enumerate(windows.plans))
        self.window: Window | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        import gymnasium as gym

        gym.Env.reset(self, seed=seed)
        options = options or {}
        if "window" in options:
            i = int(options["window"])
            if not 0 <= i < len(self.windows.windows):
                raise IndexError(f"window {i} out of range (0..{len(self.windows.windows) - 1})")
        else:
            i = int(self.np_random.integers(len(self.windows.windows)))
        self.window = self.windows.windows[i]
        self.episode = self.windows.episode(self.window, seed=int(self.np_random.integers(2**31 - 1)))
        step = self.episode.observe()
        self._last_obs = messages_text(step.messages)
        return self._last_obs, {"messages": [dict(m) for m in step.messages], "step": step, "window": i,
                                "conversation_index": self.window.conversation_index,
                                "conversation_id": step.conversation_id, "start_step": self.window.start}

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        if not terminated and self.episode is not None and self.window is not None \
                and self.episode.cursor >= self.window.end:
            truncated = True
            info["episode"] = self.episode.summary()
        return obs, reward, terminated, truncated, info


def make_env_factory(cfg: TrainConfig, answerer: Any = None) -> Callable[[], WindowedManagerEnv]:
    """A factory of manager environments over the training split's windows (PPO episode mode). The
    windows, plans and window-start states are shared by every environment the factory makes."""
    windows = _windows_for(cfg, answerer)

    def factory() -> WindowedManagerEnv:
        return WindowedManagerEnv(windows)

    factory.windows = windows  # type: ignore[attr-defined]
    return factory


__all__ = ["EPISODE_STEPS_DEFAULT", "EpisodeReward", "EpisodeRollout", "EpisodeWindows", "Window",
           "WindowedManagerEnv", "bank_manager", "episode_steps", "make_env_factory", "make_episode_rollout",
           "parse_window_prompt", "probe_answerer", "sample_with_logprobs", "turn_glue_ids"]
