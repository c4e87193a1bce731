"""Held-out in-domain check of manager policies on the steps where knowledge changes.

Rows: snapshot rows of the seed-1 synthetic validation conversations (none in the manager's SFT/RL data), banks
built by rule_based_text, kept where the step has a QA probe of the given categories (knowledge_update,
conflict_resolution: the questions whose answer changed over the dialogue). Each policy writes one greedy op
per row; the row is scored by the training reward (QA probes answered by the frozen SFT answer agent over 3+3
memories of the resulting bank).

    python scripts/manager_update_probe.py OUT.json NAME=SPEC ...

SPEC is a manager checkpoint (a LoRA adapter on SmolLM2, greedy, <= 48 tokens) or a constant policy: add (store
the turn), noop, update_top (UPDATE the first related memory shown with the turn). Paths are those of
docs/TRAINING.md ("Where the manager stands"); OUT.json keeps each row's QA term for paired comparisons."""
import json
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from memrl.config import load_config
from memrl.train import algorithms
from memrl.train.config import TrainConfig
from memrl.train.episodes import probe_answerer
from memrl.train.snapshots import score_manager_completion

torch.set_num_threads(2)
if len(sys.argv) < 3 or any("=" not in a or not a.split("=", 1)[1] for a in sys.argv[2:]) \
        or Path(sys.argv[1]).is_dir():
    print("usage: python scripts/manager_update_probe.py OUT.json NAME=SPEC ... (SPEC: a manager checkpoint, add, "
          f"noop or update_top); got {sys.argv[1:]}", file=sys.stderr)
    sys.exit(2)
out_path = sys.argv[1]
specs = dict(a.split("=", 1) for a in sys.argv[2:])
missing = [s for s in specs.values() if s not in ("add", "noop", "update_top") and not Path(s).is_dir()]
if missing:
    print(f"manager_update_probe: no manager checkpoint at {missing[0]}", file=sys.stderr)
    sys.exit(2)
cats = ["adversarial", "single_hop", "multi_hop", "temporal", "history", "open_domain"]
ov = ["data.path=runs/data/synth_rl", "data.train_split=validation", "data.max_conversations=6", "max_train_rows=0",
      "manager_env.probe_k=3", "answer_env.answer_mode=short", "probe_answerer=runs/transfer/sft_synth/final_model",
      f"manager_env.probe_skip_categories=[{','.join(cats)}]", "start_steps=0", "probed_only=true",
      "init_from=runs/manager/sft/final_model", "output_dir=runs/mgr_diag/unused"]
cfg = load_config(TrainConfig, "configs/train/grpo_manager_smollm2.yaml", ov)
rows, _ = algorithms.get(cfg.algo).rows(cfg)
rows = [dict(r) for r in rows]
print(len(rows), "rows", flush=True)
answerer = probe_answerer(cfg)
env_cfg = cfg.manager_env

def related_ids(row):
    mem = json.loads(row["memories"]) if "memories" in row else []
    return [m.get("id") for m in mem] if isinstance(mem, list) else []

def model_outputs(path, prompts):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.models import resolve_model
    base = resolve_model("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(base)
    m = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    m = PeftModel.from_pretrained(m, path).eval()
    outs = []
    for p in prompts:
        ids = tok.apply_chat_template(p, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            g = m.generate(**ids, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        outs.append(tok.decode(g[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return outs

results = {}
for name, spec in specs.items():
    t = time.time()
    if spec == "add":
        texts = ['{"ops":[{"op":"ADD"}]}'] * len(rows)
    elif spec == "noop":
        texts = ['{"ops":[{"op":"NOOP"}]}'] * len(rows)
    elif spec == "update_top":
        texts = []
        for r in rows:
            ids = related_ids(r)
            texts.append(json.dumps({"ops": [{"op": "UPDATE", "id": ids[0]}]}) if ids else '{"ops":[{"op":"ADD"}]}')
    else:
        texts = model_outputs(spec, [r["prompt"] for r in rows])
    scored = [score_manager_completion(x, r, env_cfg, answerer) for x, r in zip(texts, rows)]
    qa = [b.get("qa", float("nan")) for _, b in scored]
    ops = {}
    for x in texts:
        k = ",".join(re.findall(r'"op"\s*:\s*"(\w+)"', x)) or "unparsed"
        ops[k] = ops.get(k, 0) + 1
    results[name] = {"reward": statistics.fmean(s for s, _ in scored), "qa": statistics.fmean(qa), "per_row_qa": qa,
                     "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])[:6]), "seconds": round(time.time() - t, 1),
                     "sample": texts[:3]}
    print(name, {k: v for k, v in results[name].items() if k != "per_row_qa"}, flush=True)
Path(out_path).write_text(json.dumps({"rows": len(rows), "results": results}, indent=1))


def paired_ci(diffs, seed=0, n_boot=4000):
    """Mean of per-row differences and its 95% bootstrap interval (rows resampled)."""
    import random
    rng = random.Random(seed)
    n = len(diffs)
    boots = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    return sum(diffs) / n, boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]


if "add" in results:  # every policy against storing the turn (the add_only rule), row by row
    base = results["add"]["per_row_qa"]
    for name, r in results.items():
        m, lo, hi = paired_ci([x - y for x, y in zip(r["per_row_qa"], base)])
        print(f"{name}: QA {statistics.fmean(r['per_row_qa']):.3f}, - add {m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    consts = [n for n, s in specs.items() if s in ("add", "noop", "update_top")]
    if len(consts) > 1:  # a ceiling for choosing the op per row: each row's best constant op, picked by the probes
        #                  it is scored on (the answerer is greedy, so this is what a policy that knew from the turn
        #                  which op the probes reward would score; no such policy is shown to exist)
        best = [max(results[n]["per_row_qa"][i] for n in consts) for i in range(len(rows))]
        m, lo, hi = paired_ci([x - y for x, y in zip(best, base)])
        print(f"per-row best of {'/'.join(consts)} (oracle): QA {statistics.fmean(best):.3f}, - add {m:+.3f} "
              f"[{lo:+.3f}, {hi:+.3f}]")
