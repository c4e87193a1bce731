"""Shared-prefix computation for causal LMs: a prompt's work done once for every row that starts with it.

RL batches repeat their prompts: GRPO samples G completions of one prompt, PPO's and eval's rows share the system
prompt and instructions. A causal LM's hidden states at the shared positions do not depend on what follows, so
they can be computed once (batch 1) and their KV cache expanded to the rows:

    prefix_hidden_logprobs(model, seqs, starts, T)   per-token log-probs (and entropies) of seqs[i][starts[i]:],
                                                     with gradients (the prefix forward is part of the graph)
    generate_shared_prefix(model, prompts, config)   model.generate on [prefix | per-row suffix], the prefix
                                                     prefilled once

In an RL batch of several prompts with several rows each, both run each distinct prompt once (all of them in one
left-padded pass, after their common head) and then every row together: one decode pass per token, one pass over
the completions, instead of one per group.

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


def _head_layout(prompts: Sequence[Sequence[int]], min_shared: int, pad_id: int):
    """(ids, mask, h) for prompts laid out as [common head | own part, left-padded]: the first h tokens, shared by
    every prompt (0 when fewer than `min_shared`; each prompt keeps >= 1 token of its own), then each prompt's
    remaining tokens aligned on the right, the pads *between* head and part (the mask hides them)."""
    h = min(common_prefix_len(prompts), min(len(x) for x in prompts) - 1)
    if h < min_shared:
        h = 0
    width = max(len(x) - h for x in prompts)
    ids = torch.full((len(prompts), h + width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    if h:
        ids[:, :h] = torch.tensor(list(prompts[0][:h]), dtype=torch.long)
        mask[:, :h] = 1
    for i, x in enumerate(prompts):
        ids[i, h + width - (len(x) - h):] = torch.tensor(list(x[h:]), dtype=torch.long)
        mask[i, h + width - (len(x) - h):] = 1
    return ids, mask, h


def _prefill(backbone, ids: torch.Tensor, mask: torch.Tensor, h: int, end: int, dev):
    """KV cache of columns [0, end) of a `_head_layout`: the head once (batch 1), expanded to the rows, then the
    rows' columns [h, end) in one pass, positions from the mask (each real token keeps its unpadded position).
    None when there is nothing to cache."""
    cache = None
    if h:
        cache = _expand_cache(backbone(input_ids=ids[:1, :h].to(dev), use_cache=True).past_key_values, ids.shape[0])
    if end > h:
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = backbone(input_ids=ids[:, h:end].to(dev), attention_mask=mask[:, :end].to(dev),
                         position_ids=pos[:, h:end].to(dev), past_key_values=cache, use_cache=True).past_key_values
    return cache


def _group_index(groups: dict, n: int) -> torch.Tensor:
    """For each of n rows, the index of its group in `groups` ({key: [rows]}, as `group_rows` returns)."""
    group_of = {i: j for j, rows in enumerate(groups.values()) for i in rows}
    return torch.tensor([group_of[i] for i in range(n)], dtype=torch.long)


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
    for s, a in zip(seqs, starts):
        if not 1 <= a <= len(s):
            raise ValueError(f"score start {a} outside 1..{len(s)} for a sequence of {len(s)} tokens")
    groups = group_rows(tuple(s[:a]) for s, a in zip(seqs, starts))
    if share and 1 < len(groups) < len(seqs):
        return _grouped_hidden_logprobs(model, seqs, starts, groups, temperature, with_entropy, min_shared, pad_id,
                                        return_hidden)
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
    return _scored(head, cfg, hidden, seqs, starts, [a - 1 - p for a in starts], temperature, with_entropy,
                   return_hidden)


def _scored(head, cfg, hidden, seqs, starts, first_cols, temperature, with_entropy, return_hidden):
    """Log-probs (entropies, hidden states) of each row's scored tokens seqs[i][starts[i]:], whose predictions sit
    at tail columns first_cols[i], first_cols[i] + 1, ... of `hidden`: only those rows reach the head."""
    dev = hidden.device
    rows_idx, cols_idx, targets, sizes = [], [], [], []
    for i, (s, a, c) in enumerate(zip(seqs, starts, first_cols)):
        n = len(s) - a
        rows_idx += [i] * n
        cols_idx += list(range(c, c + n))
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


def _grouped_hidden_logprobs(model, seqs, starts, groups, temperature, with_entropy, min_shared, pad_id,
                             return_hidden):
    """prefix_hidden_logprobs for an RL batch (several prompts, each with several completions): each distinct
    prompt (up to its last token) runs once, their common head once before them, all left-padded into one batch;
    the cache is expanded to the rows and every row's tail (last prompt token + completion) runs in one pass."""
    backbone, head, cfg = split_model(model)
    dev = head.weight.device
    firsts = [rows[0] for rows in groups.values()]
    prompts = [list(seqs[i][: starts[i] - 1]) for i in firsts]  # the cached part: the prompt but its last token
    shortest = min(len(x) for x in prompts)
    if shortest == 0 or (torch.is_grad_enabled() and _checkpointing(backbone)):
        # a prompt with nothing to cache, or no cache at all (gradient checkpointing keeps none): group by group
        parts: dict[int, tuple] = {}
        for rows in groups.values():
            res = prefix_hidden_logprobs(model, [seqs[i] for i in rows], [starts[i] for i in rows], temperature,
                                         with_entropy, True, min_shared, pad_id, return_hidden)
            res = res if isinstance(res, tuple) else (res,)
            for j, i in enumerate(rows):
                parts[i] = tuple(r[j] for r in res)
        result = tuple(list(x) for x in zip(*(parts[i] for i in range(len(seqs)))))
        return result if len(result) > 1 else result[0]
    ids, mask, h = _head_layout(prompts, min_shared, pad_id)
    cache = _prefill(backbone, ids, mask, h, ids.shape[1], dev)
    row_of = _group_index(groups, len(seqs))
    cache.reorder_cache(row_of.to(dev))  # index_select along the batch (differentiable): each row its prompt's cache
    tails = [list(s[a - 1:]) for s, a in zip(seqs, starts)]
    w = max(len(t) for t in tails)
    tail_ids = torch.full((len(seqs), w), pad_id, dtype=torch.long)
    tail_mask = torch.zeros((len(seqs), w), dtype=torch.long)
    for i, t in enumerate(tails):  # right-padded after the prompt
        tail_ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        tail_mask[i, : len(t)] = 1
    full_mask = torch.cat([mask[row_of], tail_mask], dim=1)
    tail_pos = mask.sum(-1)[row_of].unsqueeze(1) + torch.arange(w).unsqueeze(0)
    hidden = backbone(input_ids=tail_ids.to(dev), attention_mask=full_mask.to(dev), position_ids=tail_pos.to(dev),
                      past_key_values=cache, use_cache=True).last_hidden_state
    return _scored(head, cfg, hidden, seqs, starts, [0] * len(seqs), temperature, with_entropy, return_hidden)


@torch.no_grad()
def generate_shared_prefix(model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_id: int,
                           min_shared: int = MIN_SHARED_PREFIX, share: bool = True, **generate_kwargs: Any):
    """`model.generate` over prompts that share a prefix: the prefix is prefilled once (batch 1), its KV cache
    expanded to the rows, and the rows' own suffixes sit after it, left-padded *between* prefix and suffix (the
    attention mask hides the pads; positions come from the mask's cumulative sum, so every real token keeps the
    position it has in the unpadded prompt). Returns (sequences [rows, prefix + width + new], width of the prompt
    part). Falls back to a plain left-padded generate when the shared prefix is short.

    Repeated prompts (an RL batch: each prompt G times) are prefilled once each, not once per row: the distinct
    prompts' suffixes run in one batch, their cache is expanded to the rows, and every row of every group then
    decodes in one `generate` call (one decode pass per token for the whole batch, not one per group).
    `share=False` is a plain left-padded `generate`: nothing shared, every row prefilled in full."""
    dev = next(model.parameters()).device
    groups = group_rows(tuple(x) if share else i for i, x in enumerate(prompts))
    distinct = [prompts[rows[0]] for rows in groups.values()]
    ids, mask, p = _head_layout(distinct, min_shared if share else 1 << 62, pad_id)
    repeated = len(distinct) < len(prompts)
    # with repeats, each distinct prompt but its last token (generate runs that one, and samples after it)
    cache = _prefill(split_model(model)[0], ids, mask, p, ids.shape[1] - 1 if repeated else p, dev)
    if repeated:
        row_of = _group_index(groups, len(prompts))
        if cache is not None:
            cache.reorder_cache(row_of.to(dev))  # index_select along the batch: each row gets its prompt's cache
        ids, mask = ids[row_of], mask[row_of]
    kw: dict[str, Any] = {"past_key_values": cache} if cache is not None else {}
    return model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), **kw, **generate_kwargs), ids.shape[1]
