"""Shared-prefix computation for causal LMs: a prompt's work done once for every row that starts with it.

RL batches repeat their prompts: GRPO samples G completions of one prompt, PPO's and eval's rows share the system
prompt and instructions. A causal LM's hidden states at the shared positions do not depend on what follows, so
they can be computed once (batch 1) and their KV cache expanded to the rows:

    prefix_hidden_logprobs(model, seqs, starts, T)   per-token log-probs (and entropies) of seqs[i][starts[i]:],
                                                     with gradients (the prefix forward is part of the graph)
    generate_shared_prefix(model, prompts, config)   model.generate on [prefix | per-row suffix], the prefix
                                                     prefilled once

Both score only the positions asked for through the LM head, in float32: on a CPU that is the difference between
16 x 16 and 16 x 420 rows through a 49,152-word head (TRL's fused head scores every position off Triton).

Equality with the plain computation: tests/test_prefix.py checks per-token log-probs and LoRA gradients against a
full right-padded forward (float32: within 1e-4) on the tiny model and on SmolLM2; in bfloat16 the gap to a float32
reference is measured there and stated in docs/PERFORMANCE.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# Below this many shared tokens the prefix pass costs more (one extra forward, the cache copies) than it saves.
MIN_SHARED_PREFIX = 16


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for other in seqs[1:]:
        i = 0
        while i < n and other[i] == first[i]:
            i += 1
        n = i
        if n == 0:
            break
    return n


def group_rows(keys) -> dict:
    """{key: [row indices]} in first-seen order: the rows that share a prompt (or any hashable key)."""
    out: dict = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return out


def split_model(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, Any]:
    """(decoder backbone, output head, text config) of a causal LM, a peft model around one included.

    LoRA layers are injected into the backbone's modules in place, so calling the backbone directly runs the
    adapter; calling it instead of `model.forward` also bypasses any patched forward (TRL's fused LM head)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    backbone = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, base.base_model_prefix)
    return backbone, head, base.config.get_text_config()


def supports_prefix_sharing(model: torch.nn.Module) -> bool:
    """Plain decoder LMs whose logits are `head(hidden)` (optionally soft-capped / scaled), no sliding window."""
    try:
        _, head, cfg = split_model(model)
    except Exception:  # noqa: BLE001 - any model without the decoder + head layout keeps the plain path
        return False
    if head is None or getattr(cfg, "sliding_window", None) or getattr(cfg, "is_encoder_decoder", False):
        return False
    return True


def _head_logprobs(head, cfg, hidden: torch.Tensor, targets: torch.Tensor, temperature: float,
                   with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(head(hidden) / T)[target] for N rows of hidden states, in float32 (and the entropy)."""
    w = head.weight
    logits = hidden.float() @ w.float().t()
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias.float()
    scale = getattr(cfg, "logit_scale", None)
    if scale:
        logits = logits * scale
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    lp = torch.log_softmax(logits / temperature, dim=-1)
    chosen = lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    ent = -(lp.exp() * lp).sum(-1) if with_entropy else None
    return chosen, ent


def _checkpointing(backbone) -> bool:
    return bool(getattr(backbone, "gradient_checkpointing", False)) and backbone.training


def _expand_cache(cache, rows: int):
    cache.batch_repeat_interleave(rows)
    return cache


def prefix_hidden_logprobs(model: torch.nn.Module, seqs: Sequence[Sequence[int]], starts: Sequence[int],
                           temperature: float = 1.0, with_entropy: bool = False, share: bool = True,
                           min_shared: int = MIN_SHARED_PREFIX, pad_id: int = 0, return_hidden: bool = False):
    """Per-token log-probs of `seqs[i][starts[i]:]` under `model`, each a float32 tensor (list, one per row);
    with `with_entropy` also the per-token entropies, with `return_hidden` also the final hidden states at the
    scored positions (a value head's input): returns `lps`, or a tuple `(lps[, entropies][, hidden])`.
    Gradients flow when grad is enabled.

    The rows' common prefix (up to the position before the first scored token) runs once with batch 1 and its
    KV cache is expanded to the rows (`share`); the rest runs right-padded. Only scored positions reach the head.
    """
    if not seqs:
        empty = ([],) + (([],) if with_entropy else ()) + (([],) if return_hidden else ())
        return empty if len(empty) > 1 else []
    groups = group_rows(tuple(s[:a]) for s, a in zip(seqs, starts))
    if share and 1 < len(groups) < len(seqs):
        # Repeated prompts (G samples each): one pass per prompt group, its whole prompt shared.
        parts = {i: None for i in range(len(seqs))}
        for rows in groups.values():
            res = prefix_hidden_logprobs(model, [seqs[i] for i in rows], [starts[i] for i in rows], temperature,
                                         with_entropy, share, min_shared, pad_id, return_hidden)
            res = res if isinstance(res, tuple) else (res,)
            for j, i in enumerate(rows):
                parts[i] = tuple(r[j] for r in res)
        result = tuple(list(x) for x in zip(*(parts[i] for i in range(len(seqs)))))
        return result if len(result) > 1 else result[0]
    for s, a in zip(seqs, starts):
        if not 1 <= a <= len(s):
            raise ValueError(f"score start {a} outside 1..{len(s)} for a sequence of {len(s)} tokens")
    backbone, head, cfg = split_model(model)
    dev = head.weight.device
    p = min(common_prefix_len(seqs), min(starts) - 1) if share else 0
    if p < min_shared or (torch.is_grad_enabled() and _checkpointing(backbone)):
        p = 0  # gradient checkpointing in training keeps no KV cache to share: every row runs in full
    cache = None
    if p:
        pre = torch.tensor([list(seqs[0][:p])], dtype=torch.long, device=dev)
        cache = backbone(input_ids=pre, use_cache=True).past_key_values
        cache = _expand_cache(cache, len(seqs))
    tails = [list(s[p:]) for s in seqs]
    width = max(len(t) for t in tails)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), p + width), dtype=torch.long)
    mask[:, :p] = 1
    for i, t in enumerate(tails):
        ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        mask[i, p: p + len(t)] = 1
    pos = torch.arange(p, p + width).unsqueeze(0).expand(len(seqs), -1)
    kw: dict[str, Any] = dict(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev))
    if cache is not None:
        kw.update(past_key_values=cache, use_cache=True)
    else:
        kw.update(use_cache=False)
    hidden = backbone(**kw).last_hidden_state  # (rows, width, H)
    # token j of row i (absolute index a..len-1) is predicted at absolute position j-1 -> tail index j-1-p
    rows_idx, cols_idx, targets, sizes = [], [], [], []
    for i, (s, a) in enumerate(zip(seqs, starts)):
        n = len(s) - a
        rows_idx += [i] * n
        cols_idx += list(range(a - 1 - p, len(s) - 1 - p))
        targets += list(s[a:])
        sizes.append(n)
    sel = hidden[torch.tensor(rows_idx, dtype=torch.long, device=dev), torch.tensor(cols_idx, dtype=torch.long, device=dev)]
    chosen, ent = _head_logprobs(head, cfg, sel, torch.tensor(targets, dtype=torch.long, device=dev), temperature,
                                 with_entropy)
    result = [list(torch.split(chosen, sizes))]
    if with_entropy:
        result.append(list(torch.split(ent, sizes)))
    if return_hidden:
        result.append(list(torch.split(sel, sizes)))
    return tuple(result) if len(result) > 1 else result[0]


@torch.no_grad()
def generate_shared_prefix(model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_id: int,
                           min_shared: int = MIN_SHARED_PREFIX, **generate_kwargs: Any):
    """`model.generate` over prompts that share a prefix: the prefix is prefilled once (batch 1), its KV cache
    expanded to the rows, and the rows' own suffixes sit after it, left-padded *between* prefix and suffix (the
    attention mask hides the pads; positions come from the mask's cumulative sum, so every real token keeps the
    position it has in the unpadded prompt). Returns (sequences [rows, prefix + width + new], width of the prompt
    part). Falls back to a plain left-padded generate when the shared prefix is short."""
    dev = next(model.parameters()).device
    p = min(common_prefix_len(prompts), min(len(x) for x in prompts) - 1)
    if p < min_shared:
        p = 0
    tails = [list(x[p:]) for x in prompts]
    width = max(len(t) for t in tails)
    ids = torch.full((len(prompts), p + width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    if p:
        ids[:, :p] = torch.tensor(list(prompts[0][:p]), dtype=torch.long)
        mask[:, :p] = 1
    for i, t in enumerate(tails):
        ids[i, p + width - len(t):] = torch.tensor(t, dtype=torch.long)
        mask[i, p + width - len(t):] = 1
    kw: dict[str, Any] = {}
    if p:
        backbone, _, _ = split_model(model)
        pre = ids[:1, :p].to(dev)
        cache = backbone(input_ids=pre, use_cache=True).past_key_values
        kw["past_key_values"] = _expand_cache(cache, len(prompts))
    seqs = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), **kw, **generate_kwargs)
    return seqs, p + width
