"""Model policies in evaluation: per-question progress and length-sorted batches.

`answer_with_progress(answerer, requests, cfg, label)` answers a conversation's questions. A baseline answers
them in one call (milliseconds). A model policy (anything with a `backend`) gets them in length-sorted chunks
of `cfg.batch_size` prompts: the sort is over the rendered prompts' token counts across the whole
conversation, so each chunk is one batch of similar lengths (little padding), and the progress bar counts
questions as batches finish (a real model answers a LoCoMo conversation in minutes, and a bar over
conversations alone would sit at 0/1). Answers come back in the requests' order.
"""

from __future__ import annotations

import sys
from typing import Any


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="q", file=sys.stderr, leave=False, dynamic_ncols=True)


def answer_with_progress(answerer: Any, requests: list[Any], cfg: Any, label: str = "") -> list[Any]:
    backend = getattr(answerer, "backend", None)
    tokenizer = getattr(backend, "tokenizer", None)
    if backend is None or tokenizer is None or len(requests) <= 1:
        return answerer.answer(requests)
    from memrl.policies.backends import render_prompt  # deferred: imports torch

    prompts = answerer.prompts(requests)
    lengths = [len(render_prompt(tokenizer, p)) for p in prompts]
    order = sorted(range(len(requests)), key=lambda i: lengths[i])
    step = max(1, int(getattr(backend, "batch_size", cfg.batch_size) or cfg.batch_size))
    out: list[Any] = [None] * len(requests)
    bar = _bar(len(requests), f"{label} questions" if label else "questions",
               bool(cfg.progress) and cfg.executor == "local")
    try:
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            for i, p in zip(idx, answerer.answer([requests[i] for i in idx])):
                out[i] = p
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
    return out


__all__ = ["answer_with_progress"]
