"""Environment figures: `env.step` and snapshot scoring latency (the env benchmark lives here, not in envs)."""

from __future__ import annotations

import statistics
import time as _time
from typing import Any

from memrl.bench.figures import Context, Figure, met, rounded
from memrl.data.schema import Conversation
from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.envs.manager.env import MemoryManagerEnv
from memrl.policies.baselines import AddOnlyManager, BM25Answerer, GoldOpsManager
from memrl.protocol.steps import Manager, ManagerStep
from memrl.train.snapshots import score_manager_completion, snapshot_dataset


# ---- environment + reward -----------------------------------------------------------------------------------------
def _first_sessions(conv, k: int):

    d = conv.to_dict()
    d["sessions"] = d["sessions"][:k]
    kept = {t["turn_id"] for s in d["sessions"] for t in s["turns"]}
    d["questions"] = [q for q in d["questions"] if q["evidence_turn_ids"] and set(q["evidence_turn_ids"]) <= kept]
    return Conversation.from_dict(d)


def benchmark_env_step(
    conversation: Conversation,
    steps: int | None = None,
    config: ManagerEnvConfig | dict | None = None,
    manager: Manager | None = None,
    snapshot_calls: int = 200,
) -> dict[str, Any]:
    """Median wall time of `env.step` (parse + apply + reward + next observation) with the heuristic
    answerer, excluding the policy: the manager's completions are computed first, outside the timer.
    Also times `score_manager_completion` on snapshot rows of the same conversation (`snapshot_calls`
    rows spread over the conversation, each after a first call that parses and caches the row). Wall
    times and process CPU times (`cpu_*`, less sensitive to other processes on a shared machine).
    """
    cfg = as_manager_config(config)
    manager = manager or (GoldOpsManager() if conversation.gold_ops else AddOnlyManager())
    env = MemoryManagerEnv([conversation], cfg, answerer=BM25Answerer())
    env.reset(seed=0, options={"conversation_index": 0})
    wall: list[float] = []
    cpu: list[float] = []
    probes = 0
    assert env.episode is not None
    while not env.episode.done and (steps is None or len(wall) < steps):
        text = manager.decide([env.episode.observe()])[0]
        t0, c0 = _time.perf_counter(), _time.process_time()
        _, _, _, _, info = env.step(text)
        wall.append(_time.perf_counter() - t0)
        cpu.append(_time.process_time() - c0)
        probes += len(info["probes"])
    ds = snapshot_dataset([conversation], cfg, manager)
    rows = [ds[i] for i in range(len(ds))]
    completions = [manager.decide([ManagerStep.from_row(r)])[0] for r in rows]
    for r, c in zip(rows, completions):  # first call per row parses the JSON (cached afterwards, as in GRPO)
        score_manager_completion(c, r, cfg)
    snap: list[float] = []
    n = min(snapshot_calls, len(rows)) if rows else 0
    for j in range(n):  # rows spread over the whole conversation: small and large banks alike
        i = j * len(rows) // n
        t0 = _time.perf_counter()
        score_manager_completion(completions[i], rows[i], cfg)
        snap.append(_time.perf_counter() - t0)

    def stats(xs: list[float], name: str) -> dict[str, float]:
        ms = sorted(x * 1e3 for x in xs)
        if not ms:
            return {f"{name}median_ms": 0.0, f"{name}p90_ms": 0.0}
        return {f"{name}median_ms": statistics.median(ms), f"{name}p90_ms": ms[int(0.9 * (len(ms) - 1))],
                f"{name}mean_ms": statistics.fmean(ms)}

    return {
        "conversation_id": conversation.conversation_id,
        "steps": len(wall),
        **stats(wall, ""),
        **stats(cpu, "cpu_"),
        "bank_size": len(env.episode.bank),
        "probes_per_step": probes / max(1, len(wall)),
        **stats(snap, "snapshot_score_"),
        "manager": manager.name,
        "facts": cfg.facts,
        "unit": cfg.unit,
    }


def bench_env(ctx: Context) -> list[Figure]:

    conv = ctx.conv26()
    k = ctx.sizes.env_sessions
    if k:
        conv = _first_sessions(conv, k)
    r = benchmark_env_step(conv, snapshot_calls=ctx.sizes.env_snapshot_calls)
    size = (f"LoCoMo conv-26{'' if not k else f', first {k} sessions'}: {r['steps']} steps, bank of "
            f"{r['bank_size']} entries, {r['probes_per_step']:.2f} QA probes per step")
    ctx.shared["env_step"] = r
    return [
        Figure("env.manager_step_median_ms", rounded(r["median_ms"]), "ms", target="<= 1 ms per step (median)",
               met=met(r["median_ms"], "<=", 1.0, not k),
               note=f"env.step = parse + apply + reward + next observation, heuristic (BM25) answer agent, "
                    f"{r['manager']} manager's completions (computed outside the timer); {size}; p90 "
                    f"{r['p90_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms (probe steps answer questions), CPU median "
                    f"{r['cpu_median_ms']:.2f} ms" + ("; fewer sessions than LoCoMo-sized: target n/a" if k else "")),
        Figure("env.snapshot_reward_median_ms", rounded(r["snapshot_score_median_ms"]), "ms",
               note=f"ManagerSnapshotReward on one completion of a snapshot row (what a GRPO reward call costs per "
                    f"sample; row parse cached); {size}; p90 {r['snapshot_score_p90_ms']:.2f} ms"),
    ]
