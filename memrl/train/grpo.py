"""memrl's GRPO trainer: TRL's `GRPOTrainer` with one prefill per prompt group on the transformers path.

A GRPO batch holds each prompt `num_generations` times. TRL 1.16 runs every copy through the model: G prefills in
generation, G copies of the prompt in the loss forward and backward, and (off Triton, i.e. on CPU) its fused LM
head scores every prompt position through the vocabulary. This subclass overrides two methods, nothing else:

- `_generate_single_turn`: each group's prompt is prefilled once and its KV cache expanded to the G samples; the
  rows of all groups then decode together (`memrl.policies.prefix.generate_shared_prefix`).
- `_get_per_token_logps_and_entropies`: each group's prompt runs once *with gradients* (the batch's prompts in one
  pass), the completions run on the expanded cache (all of them in one pass), and only completion positions reach
  the LM head, in float32 (`memrl.policies.prefix.prefix_hidden_logprobs`).

Everything else (rewards, advantages, loss types, logging, checkpoints, resume) is TRL's. vLLM generation,
transformers continuous batching, multimodal inputs and MoE aux losses keep TRL's own path, and so does
`shared_prefix: false` (the recipe key). tests/test_prefix.py checks that both paths give the same per-token
log-probs and gradients (float32, within 1e-4).
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer as _TRLGRPOTrainer
from trl.models import unwrap_model_for_generation

from memrl.policies.prefix import (
    generate_shared_prefix,
    prefix_hidden_logprobs,
    supports_prefix_sharing,
)

_MULTIMODAL = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
               "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


class GRPOTrainer(_TRLGRPOTrainer):
    """`GRPOTrainer(..., shared_prefix=True)`: TRL's trainer, prompt work done once per group (module docstring)."""

    def __init__(self, *args, shared_prefix: bool = True, **kwargs):
        self.shared_prefix = shared_prefix
        super().__init__(*args, **kwargs)
        self.shared_prefix = shared_prefix and supports_prefix_sharing(self.model)

    def _own_path(self) -> bool:
        return (self.shared_prefix and not self.use_vllm
                and not getattr(self, "use_transformers_continuous_batching", False))

    # --- generation: one prefill per group ------------------------------------------------------------------
    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if not self._own_path() or images or multimodal_fields or has_tool_images:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        pad = self._tokenizer.pad_token_id
        eos = set(self.eos_token_ids)
        completions: list[list[int] | None] = [None] * len(prompt_ids)
        with (unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                          gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                                          generation_kwargs=self.generation_kwargs,
                                          gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs)
              as unwrapped, torch.no_grad(), self._dist.summon_full_params(self.model_wrapped, recurse=False)):
            # every group's prompt prefilled once, all rows decoded together (one pass per token for the batch)
            seqs, width = generate_shared_prefix(unwrapped, [list(p) for p in prompt_ids], pad, min_shared=1,
                                                 generation_config=self.generation_config)
            for i, row in enumerate(seqs[:, width:].tolist()):
                # keep everything up to and including the first EOS (TRL's completion mask)
                cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
                completions[i] = row[:cut]
        return completions, None

    # --- log-probs: the prompt once per group, with gradients -----------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **multimodal):
        if (not self._own_path() or compute_aux_loss
                or any(multimodal.get(k) is not None for k in _MULTIMODAL)):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        k = logits_to_keep
        prompts, comps = [], []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            prompts.append(tuple(t for t, m in zip(ids[:-k], mask[:-k]) if m))
            comps.append([t for t, m in zip(ids[-k:], mask[-k:]) if m])
        dev = input_ids.device
        live = [i for i, c in enumerate(comps) if c]
        row_lp: list[torch.Tensor] = [torch.zeros(k, device=dev)] * len(prompts)
        row_ent: list[torch.Tensor] = [torch.zeros(k, device=dev)] * len(prompts)
        if live:  # one call: rows are grouped by prompt inside, each group's prompt computed once
            res = prefix_hidden_logprobs(model, [list(prompts[i]) + comps[i] for i in live],
                                         [len(prompts[i]) for i in live], temperature=self.temperature,
                                         with_entropy=compute_entropy, pad_id=self._tokenizer.pad_token_id or 0)
            lps, es = res if compute_entropy else (res, None)
            for j, i in enumerate(live):
                pad = torch.zeros(k - len(comps[i]), device=dev)
                row_lp[i] = torch.cat([lps[j], pad])
                if es is not None:
                    row_ent[i] = torch.cat([es[j], pad])
        return torch.stack(row_lp), (torch.stack(row_ent) if compute_entropy else None), None
