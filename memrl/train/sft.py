"""memrl's SFT trainer: TRL's `SFTTrainer` whose fused LM head scores only the label positions on every device.

TRL 1.16 computes the SFT loss with its fused LM head (`add_fused_lm_head`): the backbone's hidden states go
through the 49,152-word vocabulary in tiles, and only the per-token log-probs come back. On a Triton device it
projects only the positions whose label is not -100; elsewhere (CPU, Neuron) it projects *every* position and masks
afterwards, because on Neuron a changing number of valid positions recompiles the tiles (trl/trainer/utils.py).
On CPU nothing is compiled, and in memrl's SFT rows the prompt (a question and its memories, ~350 tokens) is most
of a sequence while the loss is on the answer alone (~10 tokens, `completion_only_loss`): scoring every position
is mostly waste, in the forward and again in the backward.

This subclass makes only that decision (`compact`) true on CPU while its loss is computed; the tile kernels keep their own
device check, and everything else (data collation, loss types, metrics, checkpoints, resume) is TRL's. The loss,
gradients, entropy and token accuracy are the same (tests/test_sft_compact.py, float32, within 1e-5);
`compact_lm_head=False` keeps TRL's own path.
"""

from __future__ import annotations

import contextlib
import threading

import trl.trainer.utils as _trl_utils
from trl import SFTTrainer as _TRLSFTTrainer

_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def compact_fused_head():
    """Within the block, TRL's fused LM head projects only positions with a label on CPU too (as on Triton devices)."""
    original = getattr(_trl_utils, "_use_triton", None)
    if original is None:  # a TRL without the decision point: nothing to change (the pin is trl==1.16.0)
        yield
        return
    with _PATCH_LOCK:  # CPU joins the devices TRL already scores compactly (Neuron & co keep fixed tile shapes)
        _trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
        try:
            yield
        finally:
            _trl_utils._use_triton = original


class SFTTrainer(_TRLSFTTrainer):
    """`SFTTrainer(..., compact_lm_head=True)`: TRL's trainer, the LM head run on label positions only."""

    def __init__(self, *args, compact_lm_head: bool = True, **kwargs):
        self.compact_lm_head = compact_lm_head
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.compact_lm_head:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        with compact_fused_head():
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
