"""PPO for language-model policies, in one file you can read top to bottom (CleanRL's spirit).

TRL removed its PPOTrainer in 1.13, so memrl owns PPO. It uses the same reward functions as GRPO (TRL's
signature `f(prompts, completions, **columns) -> list[float | None]`), the same environments and the same
checkpoint format (a Hugging Face model directory in safetensors).

One iteration:
  1. Rollout. Single-step tasks: a batch of dataset rows, one sampled completion each, scored by the reward
     functions. Multi-step tasks (the memory-manager environment): `episodes_per_iter` episodes; at every
     step the policy writes one completion and the environment returns that step's reward.
  2. Per-token quantities under the rollout policy, without gradients: log-probabilities of the policy and
     of the frozen reference, and critic values. (The first minibatch's are taken from its update pass, which
     runs before any weight changes: the same numbers, one forward fewer.)
  3. Per-token rewards: -kl_coef * (logp - ref_logp) at every generated token (the k1 KL estimator, as
     in Ziegler et al. 2019 and TRL's old PPOTrainer), plus the step's task reward on its last token.
  4. GAE(gamma, lambda) backwards over the generated tokens of an episode, *across* environment steps:
     the value that follows the last token of step t is the value at the first token of step t+1, so a
     write at session 2 gets credit for a question answered at session 9.
  5. `ppo_epochs` passes over shuffled minibatches: clipped surrogate policy loss, clipped value loss,
     separate learning rates for actor and critic (Memory-R1: 1e-6 and 1e-5 on real models).

Determinism and resume: iteration `i` seeds torch with `seed + i` before sampling and draws its rows from
a permutation fixed by `seed` and the epoch number, so a run resumed from a checkpoint continues exactly
as the uninterrupted run would have (tested).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
import torch.nn as nn

from memrl.policies.prefix import generate_shared_prefix, group_rows, prefix_hidden_logprobs
from memrl.train.run import CheckpointError, latest_checkpoint  # noqa: F401 - PPO resumes through them

if TYPE_CHECKING:  # the schema lives with the algorithm's recipe section (no torch there)
    from memrl.train.algorithms.ppo import PPOConfig


# ---------------------------------------------------------------------------------------------------------
# Critic
class ValueModel(nn.Module):
    """A transformer backbone with a scalar head: V(prefix) for every position."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask):
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(h).squeeze(-1)


def make_critic(policy: nn.Module, kind: str) -> ValueModel | nn.Linear:
    hidden = policy.config.hidden_size
    if kind == "separate":
        import copy

        return ValueModel(copy.deepcopy(policy.get_decoder() if hasattr(policy, "get_decoder") else policy.model),
                          hidden)
    if kind == "shared":
        head = nn.Linear(hidden, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        return head
    raise ValueError(f"ppo.critic must be 'separate' or 'shared', got {kind!r}")


# ---------------------------------------------------------------------------------------------------------
# Batched forward passes over (prompt, response) pairs, right-padded so positions are plain 0..L-1.
@dataclass
class Segment:
    """One generated completion: the unit of PPO bookkeeping."""

    prompt_ids: list[int]
    response_ids: list[int]
    reward: float  # the task reward for this step (put on its last token)
    episode: int  # episode index within the iteration (single-step: its own index)
    step: int  # position of the step within its episode
    logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    # The last step of an episode cut short (truncated, or still running at the rollout's step cap) carries the
    # next observation's prompt: GAE bootstraps from V(next state) instead of treating the cut as terminal.
    bootstrap_ids: list[int] | None = None
    bootstrap_value: float = 0.0


def _pack(segments: Sequence[Segment], pad_id: int, device=None):
    seqs = [s.prompt_ids + s.response_ids for s in segments]
    L = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return ids.to(device), mask.to(device)


def _device(module) -> torch.device:
    return next(module.parameters()).device


def _response_slices(segments: Sequence[Segment]):
    # logits at position p predict token p+1: the response tokens [P, P+R) are predicted at [P-1, P+R-1)
    return [(len(s.prompt_ids) - 1, len(s.prompt_ids) - 1 + len(s.response_ids)) for s in segments]


def response_logprobs(model, segments, pad_id, temperature, with_entropy=False, share_prefix=True,
                      return_hidden=False):
    """Per-token log-probs (float32) of each segment's response under `model`, optionally with entropies.

    The chunk's common prompt prefix runs once and only response positions reach the LM head
    (memrl.policies.prefix); `share_prefix=False` runs every row in full (the same numbers within 1e-4 in float32).
    `return_hidden` also returns the final hidden states at the scored positions (the shared critic's input)."""
    seqs = [s.prompt_ids + s.response_ids for s in segments]
    starts = [len(s.prompt_ids) for s in segments]
    res = prefix_hidden_logprobs(model, seqs, starts, temperature=temperature, with_entropy=with_entropy,
                                 share=share_prefix, pad_id=pad_id, return_hidden=return_hidden)
    return res


def response_values(critic, policy, segments, pad_id, kind, share_prefix=True):
    if kind == "shared":
        *_, hidden = response_logprobs(policy, segments, pad_id, 1.0, share_prefix=share_prefix, return_hidden=True)
        return [critic(h.float()).squeeze(-1).cpu() for h in hidden]
    ids, mask = _pack(segments, pad_id, _device(policy))
    v = critic(ids, mask)
    # V at the position *before* each response token (the state in which the token is chosen)
    return [v[i, a:b].float().cpu() for i, (a, b) in enumerate(_response_slices(segments))]


# ---------------------------------------------------------------------------------------------------------
# Advantages
def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float, last_value: float = 0.0):
    """Generalised advantage estimation over one sequence of tokens (Schulman et al. 2016).

    rewards, values: shape [T]. `last_value` is V after the final token (0 at episode end).
    Returns (advantages, returns), each [T].
    """
    T = rewards.shape[0]
    adv = torch.zeros(T)
    running = 0.0
    next_value = last_value
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
        next_value = values[t]
    return adv, adv + values


def compute_advantages(segments: list[Segment], kl_coef: float, gamma: float, lam: float,
                       whiten: bool) -> dict[str, float]:
    """Token rewards (KL penalty + task reward on the last token), then GAE across each episode's steps."""
    by_episode: dict[int, list[Segment]] = {}
    for s in segments:
        by_episode.setdefault(s.episode, []).append(s)
    kls = []
    for eps in by_episode.values():
        eps.sort(key=lambda s: s.step)
        rewards, values, lengths = [], [], []
        for s in eps:
            kl = s.logprobs - s.ref_logprobs
            kls.append(kl.sum().item())
            r = -kl_coef * kl
            r[-1] += s.reward
            rewards.append(r)
            values.append(s.values)
            lengths.append(len(s.response_ids))
        adv, ret = gae(torch.cat(rewards), torch.cat(values), gamma, lam, last_value=eps[-1].bootstrap_value)
        for s, a, r in zip(eps, adv.split(lengths), ret.split(lengths)):
            s.advantages, s.returns = a, r
    if whiten:
        allv = torch.cat([s.advantages for s in segments])
        mean, std = allv.mean(), allv.std(unbiased=False)
        for s in segments:
            s.advantages = (s.advantages - mean) / (std + 1e-8)
    return {"kl": sum(kls) / max(1, len(kls))}


def ppo_losses(new_logp, old_logp, adv, new_v, old_v, ret, clip, clip_v):
    """Clipped surrogate and clipped value losses (token means), plus diagnostics."""
    ratio = torch.exp(new_logp - old_logp)
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - clip, 1 + clip)
    pg_loss = torch.max(pg1, pg2).mean()
    v_clipped = old_v + torch.clamp(new_v - old_v, -clip_v, clip_v)
    vf_loss = 0.5 * torch.max((new_v - ret) ** 2, (v_clipped - ret) ** 2).mean()
    with torch.no_grad():
        clipfrac = ((ratio - 1).abs() > clip).float().mean().item()
        approx_kl = ((ratio - 1) - torch.log(ratio)).mean().item()  # the k3 estimator
    return pg_loss, vf_loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


# ---------------------------------------------------------------------------------------------------------
# Rollouts
def _render(tokenizer, prompt) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)


# Sampling settings that override whatever a checkpoint's generation_config.json ships (real checkpoints set
# e.g. top_k=20; transformers' default is top_k=50): PPO's ratios and KL are computed on the full softmax at
# `temperature`, so the rollout must sample from that same distribution.
FULL_SOFTMAX = dict(top_k=0, top_p=1.0, min_p=None, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0,
                    repetition_penalty=1.0, no_repeat_ngram_size=0, bad_words_ids=None, suppress_tokens=None,
                    begin_suppress_tokens=None)


@torch.no_grad()
def generate(policy, tokenizer, prompt_ids: list[list[int]], cfg: PPOConfig) -> list[list[int]]:
    """Sample one response per prompt (left-padded batch). Returns response ids, EOS included."""
    pad = tokenizer.pad_token_id
    # A repeated prompt (samples_per_prompt > 1) is prefilled once for its samples, distinct prompts share their
    # common prefix (system prompt, instructions), and all rows decode together: memrl.policies.prefix.
    # shared_prefix: false is a plain left-padded generate (every row prefilled in full).
    out, L = generate_shared_prefix(policy, prompt_ids, pad, share=cfg.shared_prefix, do_sample=True,
                                    temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, pad_token_id=pad,
                                    eos_token_id=tokenizer.eos_token_id, **FULL_SOFTMAX)
    responses: list[list[int]] = []
    for row in out[:, L:].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        else:
            row = [t for t in row if t != pad] or row[:1]
        responses.append(row)
    return responses


def _score(reward_funcs, weights, prompts, completions, columns) -> list[float]:
    total = [0.0] * len(completions)
    for f, w in zip(reward_funcs, weights):
        vals = f(prompts=prompts, completions=completions, **columns)
        for i, v in enumerate(vals):
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                total[i] += w * float(v)
    return total


class RowRollouts:
    """Single-step tasks: rows of a dataset with a `prompt` column, scored by TRL-style reward functions."""

    def __init__(self, dataset, reward_funcs: Sequence[Callable] | Callable, weights: Sequence[float] | None = None):
        self.rows = [dict(r) for r in dataset]
        if not self.rows:
            raise ValueError("PPO needs a non-empty training dataset")
        self.reward_funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        self.weights = list(weights) if weights else [1.0] * len(self.reward_funcs)

    def collect(self, policy, tokenizer, cfg: PPOConfig, iteration: int) -> tuple[list[Segment], dict]:
        n = len(self.rows)
        k = cfg.samples_per_prompt  # each drawn row is sampled k times (batch_size / k distinct prompts)
        per_iter = cfg.batch_size // k
        start = iteration * per_iter
        idx = []
        for j in range(start, start + per_iter):  # epoch-wise permutations fixed by the seed
            epoch, pos = divmod(j, n)
            perm = list(range(n))
            random.Random(cfg.seed * 1_000_003 + epoch).shuffle(perm)
            idx.extend([perm[pos]] * k)
        rows = [self.rows[i] for i in idx]
        prompts = [r["prompt"] for r in rows]
        prompt_ids = [_render(tokenizer, p) for p in prompts]
        responses = generate(policy, tokenizer, prompt_ids, cfg)
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": t}] if not isinstance(p, str) else t
                       for p, t in zip(prompts, texts)]
        columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
        rewards = _score(self.reward_funcs, self.weights, prompts, completions, columns)
        segs = [Segment(p, r, rw, episode=i, step=0) for i, (p, r, rw) in enumerate(zip(prompt_ids, responses, rewards))]
        return segs, {"reward": sum(rewards) / len(rewards), "completion_length":
                      sum(len(r) for r in responses) / len(responses), "sample": texts[0]}


class EnvRollouts:
    """Multi-step tasks: a gymnasium text environment; an episode is `max_steps` steps (or until done)."""

    def __init__(self, env_factory: Callable[[], Any], max_steps: int = 8):
        self.env_factory = env_factory
        self.max_steps = max_steps

    def collect(self, policy, tokenizer, cfg: PPOConfig, iteration: int) -> tuple[list[Segment], dict]:
        envs = [self.env_factory() for _ in range(cfg.batch_size)]
        obs, infos = [], []
        for i, env in enumerate(envs):
            o, info = env.reset(seed=cfg.seed * 1_000_003 + iteration * cfg.batch_size + i)
            obs.append(o)
            infos.append(info)
        alive = list(range(len(envs)))
        segs: list[Segment] = []
        total, steps = 0.0, 0
        for step in range(self.max_steps):
            if not alive:
                break
            prompts = [infos[i].get("messages") or obs[i] for i in alive]
            prompt_ids = [_render(tokenizer, p) for p in prompts]
            responses = generate(policy, tokenizer, prompt_ids, cfg)
            texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
            still = []
            for i, p, r, t in zip(alive, prompt_ids, responses, texts):
                o, rew, term, trunc, info = envs[i].step(t)
                seg = Segment(p, r, float(rew), episode=i, step=step)
                segs.append(seg)
                total += float(rew)
                steps += 1
                obs[i], infos[i] = o, info
                if not (term or trunc) and step + 1 < self.max_steps:
                    still.append(i)
                elif not term:  # cut short, not ended: the episode goes on from the next observation
                    seg.bootstrap_ids = _render(tokenizer, info.get("messages") or o)
            alive = still
        for env in envs:
            env.close()
        return segs, {"reward": total / max(1, len(envs)), "reward_per_step": total / max(1, steps),
                      "completion_length": sum(len(s.response_ids) for s in segs) / max(1, len(segs)),
                      "steps_per_episode": steps / max(1, len(envs))}


# ---------------------------------------------------------------------------------------------------------
# The trainer
class PPOTrainer:
    """`PPOTrainer(policy, tokenizer, rollouts, cfg, output_dir).train()`; see the module docstring."""

    def __init__(self, policy, tokenizer, rollouts, cfg: PPOConfig, output_dir: str | os.PathLike,
                 ref_policy=None, metrics_logger: Callable[[dict], None] | None = None,
                 share_prefix: bool | None = None):
        import copy

        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.policy = policy
        self.tok = tokenizer
        self.rollouts = rollouts
        self.out = Path(output_dir)
        if share_prefix is not None:  # the argument overrides the config's, for the rollouts' generation too
            self.cfg = cfg = replace(cfg, shared_prefix=share_prefix)
        if ref_policy is not None:
            self.ref = ref_policy
        elif _fresh_adapter(policy):  # the start policy is the base model: adapter off (see ref_logprobs)
            self.ref = None
        else:
            self.ref = copy.deepcopy(policy)
        if self.ref is not None:
            self.ref.eval().requires_grad_(False)
        # Dropout off (TRL's disable_dropout): the rollout's log-probs are computed in eval mode, the update's in
        # train mode, and a trained LoRA adapter (an SFT warm start) with lora_dropout would make their ratio noise.
        for m in self.policy.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        # The critic trains every weight it has: float32 (bf16 weights under AdamW lose small updates).
        self.critic = make_critic(policy, cfg.critic).to(_device(policy), torch.float32)
        self.opt_actor = torch.optim.AdamW(self.policy.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
        self.opt_critic = torch.optim.AdamW(self.critic.parameters(), lr=cfg.critic_learning_rate, weight_decay=0.0)
        self.iteration = 0
        self.log = metrics_logger or (lambda m: None)
        self.history: list[dict] = []
        self.reuse_first_pass = True  # see step(); False computes every rollout log-prob in its own no-grad pass

    @property
    def share_prefix(self) -> bool:
        """Each prompt group's prompt computed once (`ppo.shared_prefix`); the rollouts read the same config."""
        return self.cfg.shared_prefix

    def ref_logprobs(self, chunk):
        """Log-probs under the frozen reference (the start policy). A fresh LoRA adapter (B = 0) leaves the base
        model unchanged, so its reference is the policy with the adapter disabled: no second copy in memory."""
        args = (chunk, self.tok.pad_token_id, self.cfg.temperature)
        if self.ref is not None:
            return response_logprobs(self.ref, *args, share_prefix=self.share_prefix)
        with self.policy.disable_adapter():
            return response_logprobs(self.policy, *args, share_prefix=self.share_prefix)

    def _logprobs_values(self, chunk, with_entropy=False):
        """(log-probs, values[, entropies]) of a chunk under the policy: with the shared critic, from one forward."""
        pad, cfg = self.tok.pad_token_id, self.cfg
        if cfg.critic == "shared":
            res = response_logprobs(self.policy, chunk, pad, cfg.temperature, with_entropy=with_entropy,
                                    share_prefix=self.share_prefix, return_hidden=True)
            lps, hidden = res[0], res[-1]
            vals = [self.critic(h.float()).squeeze(-1).cpu() for h in hidden]
        else:
            res = response_logprobs(self.policy, chunk, pad, cfg.temperature, with_entropy=with_entropy,
                                    share_prefix=self.share_prefix)
            lps = res[0] if with_entropy else res
            vals = response_values(self.critic, self.policy, chunk, pad, cfg.critic, self.share_prefix)
        lps = [x.cpu() for x in lps]
        return (lps, vals, [e.cpu() for e in res[1]]) if with_entropy else (lps, vals)

    # --- one iteration ---------------------------------------------------------------------------------
    def step(self) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 7919 + self.iteration)
        self.policy.eval()
        segs, roll = self.rollouts.collect(self.policy, self.tok, cfg, self.iteration)
        pad = self.tok.pad_token_id
        # Minibatches are drawn from shuffled prompt groups (a group = one prompt's samples, kept together so its
        # prompt is computed once); with one sample per prompt this is a plain shuffle of the completions.
        groups = list(group_rows((s.step, tuple(s.prompt_ids)) for s in segs).values())
        rng = random.Random(cfg.seed * 31 + self.iteration)
        epochs = []
        for _ in range(cfg.ppo_epochs):
            rng.shuffle(groups)
            epochs.append(list(_chunks([i for g in groups for i in g], cfg.minibatch_size)))
        # The first minibatch's update pass runs before any weight changes, so its log-probs and values *are* the
        # rollout policy's: it is computed once, with gradients, and doubles as its own rollout pass (one no-grad
        # forward fewer per iteration; with one epoch of one minibatch the whole no-grad policy pass goes).
        first = epochs[0][0] if self.reuse_first_pass and epochs and epochs[0] else []
        in_first = set(first)
        with torch.no_grad():
            rest = [s for i, s in enumerate(segs) if i not in in_first]
            for chunk in _chunks(rest, max(cfg.minibatch_size, 16)):
                lps, vals = self._logprobs_values(chunk)
                for s, lp, v in zip(chunk, lps, vals):
                    s.logprobs, s.values = lp, v
            for chunk in _chunks(segs, max(cfg.minibatch_size, 16)):
                for s, rl in zip(chunk, self.ref_logprobs(chunk)):
                    s.ref_logprobs = rl
            cut = [s for s in segs if s.bootstrap_ids]
            for chunk in _chunks(cut, max(cfg.minibatch_size, 16)):
                # V of the next state = the critic's value before the first token of a response to its prompt
                probe = [Segment(s.bootstrap_ids, [pad], 0.0, episode=-1, step=0) for s in chunk]
                for s, v in zip(chunk, response_values(self.critic, self.policy, probe, pad, cfg.critic,
                                                       self.share_prefix)):
                    s.bootstrap_value = float(v[0])
        self.policy.train()
        t_roll = time.perf_counter() - t0  # the first minibatch's pass below is the update's, timed with it
        first_pass = None
        if first:
            first_pass = self._logprobs_values([segs[i] for i in first], with_entropy=True)
            for i, lp, v in zip(first, first_pass[0], first_pass[1]):
                segs[i].logprobs, segs[i].values = lp.detach(), v.detach()
        adv_stats = compute_advantages(segs, cfg.kl_coef, cfg.gamma, cfg.lam, cfg.whiten_advantages)

        stats: dict[str, list[float]] = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "approx_kl": [], "entropy": []}
        for minibatches in epochs:
            for mb in minibatches:
                chunk = [segs[i] for i in mb]
                if first_pass is not None:  # the first epoch's first minibatch, computed above (its graph freed once used)
                    (new_lp, new_v, ent), first_pass = first_pass, None
                else:
                    new_lp, new_v, ent = self._logprobs_values(chunk, with_entropy=True)
                cat = lambda xs: torch.cat(xs)  # noqa: E731
                pg, vf, diag = ppo_losses(
                    cat(new_lp), cat([s.logprobs for s in chunk]), cat([s.advantages for s in chunk]),
                    cat(new_v), cat([s.values for s in chunk]), cat([s.returns for s in chunk]),
                    cfg.clip_range, cfg.clip_range_value)
                self.opt_actor.zero_grad(set_to_none=True)
                self.opt_critic.zero_grad(set_to_none=True)
                (pg + cfg.vf_coef * vf).backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.opt_actor.step()
                self.opt_critic.step()
                stats["pg_loss"].append(pg.item())
                stats["vf_loss"].append(vf.item())
                stats["clipfrac"].append(diag["clipfrac"])
                stats["approx_kl"].append(diag["approx_kl"])
                stats["entropy"].append(cat(ent).mean().item())
        self.iteration += 1
        returns = torch.cat([s.returns for s in segs])
        values = torch.cat([s.values for s in segs])
        var = returns.var(unbiased=False)
        metrics = {
            "step": self.iteration,
            **{k: v for k, v in roll.items() if not isinstance(v, str)},
            **{k: sum(v) / max(1, len(v)) for k, v in stats.items()},
            "kl_to_ref": adv_stats["kl"],
            "explained_variance": (1 - (returns - values).var(unbiased=False) / var).item() if var > 0 else 0.0,
            "rollout_seconds": t_roll,
            "step_seconds": time.perf_counter() - t0,
        }
        self.history.append(metrics)
        return metrics

    def train(self, progress: bool = True) -> list[dict]:
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.total_iterations, initial=self.iteration, desc="ppo", disable=not progress)
        while self.iteration < cfg.total_iterations:
            m = self.step()
            if cfg.log_every and self.iteration % cfg.log_every == 0:
                self.log(m)
            bar.update(1)
            bar.set_postfix(reward=f"{m['reward']:.3f}", kl=f"{m['kl_to_ref']:.3f}")
            if cfg.save_every and self.iteration % cfg.save_every == 0:
                self.save_checkpoint()
        bar.close()
        return self.history

    # --- checkpoints -----------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """checkpoint-<it>/: policy (HF dir, safetensors), critic + optimizers (safetensors / weights-only)."""
        from safetensors.torch import save_file

        ckpt = self.out / f"checkpoint-{self.iteration}"
        tmp = self.out / f".checkpoint-{self.iteration}.tmp"
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.policy.save_pretrained(tmp / "policy", safe_serialization=True)
        self.tok.save_pretrained(tmp / "policy")
        save_file({k: v.contiguous() for k, v in self.critic.state_dict().items()}, str(tmp / "critic.safetensors"))
        # Optimizer states hold only tensors and numbers: saved with torch.save, loaded with weights_only=True
        # (no arbitrary unpickling).
        torch.save({"actor": self.opt_actor.state_dict(), "critic": self.opt_critic.state_dict()},
                   tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(
            {"iteration": self.iteration, "config": asdict(self.cfg), "history": self.history}, indent=1))
        if ckpt.exists():
            import shutil

            shutil.rmtree(ckpt)
        os.replace(tmp, ckpt)
        return ckpt

    def load_checkpoint(self, ckpt: str | os.PathLike) -> None:
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        ckpt = Path(ckpt)
        needed = ["policy/config.json", "critic.safetensors", "optimizer.pt", "trainer_state.json"]
        for rel in needed:
            if not (ckpt / rel).exists():
                raise CheckpointError(f"checkpoint {ckpt} is incomplete: missing {rel}")
        try:
            state = json.loads((ckpt / "trainer_state.json").read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{ckpt / 'trainer_state.json'}: corrupt ({e})") from None
        try:
            loaded = AutoModelForCausalLM.from_pretrained(ckpt / "policy", use_safetensors=True)
        except Exception as e:
            raise CheckpointError(f"{ckpt / 'policy'}: cannot load the policy weights ({e})") from None
        self.policy.load_state_dict(loaded.state_dict())
        try:
            self.critic.load_state_dict(load_file(str(ckpt / "critic.safetensors")))
        except Exception as e:
            raise CheckpointError(f"{ckpt / 'critic.safetensors'}: cannot load ({e})") from None
        try:
            opt = torch.load(ckpt / "optimizer.pt", weights_only=True)
            self.opt_actor.load_state_dict(opt["actor"])
            self.opt_critic.load_state_dict(opt["critic"])
        except Exception as e:
            raise CheckpointError(f"{ckpt / 'optimizer.pt'}: cannot load ({e})") from None
        self.iteration = int(state["iteration"])
        self.history = list(state.get("history", []))


def _fresh_adapter(policy) -> bool:
    """A peft model whose LoRA B matrices are all zero: it computes exactly its base model."""
    if not hasattr(policy, "disable_adapter"):
        return False
    bs = [p for n, p in policy.named_parameters() if "lora_B" in n]
    return bool(bs) and all(not p.detach().any() for p in bs)


def _chunks(xs, n):
    for i in range(0, len(xs), n):
        yield xs[i: i + n]
