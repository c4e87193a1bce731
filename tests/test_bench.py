"""`memrl bench`: the bench.json schema and table, the --only filter, the A/B step interleaving, and (slow) the
whole `memrl bench --quick` as CI runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memrl.bench import run_bench
from memrl.bench.eval import benchmark_eval_throughput
from memrl.bench.generation import benchmark_generation
from memrl.bench.rl import _Baton
from memrl.bench.synth import benchmark_synthesis
from memrl.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
FIGURE_KEYS = {"name", "value", "unit", "reference", "ratio", "target", "met"}


def _check_schema(result: dict) -> None:
    m = result["machine"]
    for key in ("cpu", "cores", "memory_gb", "python", "torch", "transformers", "trl", "date", "load_avg_start",
                "load_avg_end"):
        assert m.get(key) is not None, key
    names = [f["name"] for f in result["figures"]]
    assert len(names) == len(set(names)), "figure names must be unique"
    for f in result["figures"]:
        assert FIGURE_KEYS <= set(f), f
        assert isinstance(f["name"], str) and isinstance(f["unit"], str) and f["unit"]
        assert f["value"] is None or isinstance(f["value"], (int, float))
        assert f["met"] in (None, True, False)
        if f["met"] is not None:  # a verdict needs a target and a value
            assert f["target"] and f["value"] is not None, f
        if f["ratio"] is not None:  # a ratio needs the reference it divides by
            assert f["reference"], f
        elif f["reference"] and f["value"] is not None:  # only a quoted (published) reference has no ratio
            assert "published" in f["reference"], f


def test_quick_subset_writes_schema_and_table(tmp_path, capsys):
    rc = cli_main(["bench", "--quick", "--only", "bank,synth,vllm", "--out", str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    _check_schema(result)
    assert result["quick"] is True and not result["errors"]
    by_name = {f["name"]: f for f in result["figures"]}
    # Measured figures are positive numbers; the 100k bank figures are skipped in --quick, with target n/a.
    for name in ("bank.top30_p50_ms_10k", "bank.op_apply_ops_per_s", "synth.conversations_per_s_1proc"):
        assert by_name[name]["value"] > 0, name
    assert by_name["bank.top30_p50_ms_100k"]["value"] is None and by_name["bank.top30_p50_ms_100k"]["met"] is None
    assert by_name["bank.op_apply_ops_per_s"]["met"] == (by_name["bank.op_apply_ops_per_s"]["value"] >= 50_000)
    # vllm is not installed in the CPU environment: a null figure that says so, not an error.
    v = by_name["generation.vllm_tokens_per_s"]
    assert v["value"] is None and "vllm" in v["note"]
    # The table: printed and written, one row per figure.
    md = (tmp_path / "bench.md").read_text()
    printed = capsys.readouterr().out
    for f in result["figures"]:
        assert f"| {f['name']} |" in md and f"| {f['name']} |" in printed
    assert "load average" in md


def test_unknown_group_is_a_config_error(tmp_path, capsys):
    assert cli_main(["bench", "--only", "bank,nonsense", "--out", str(tmp_path)]) == 2
    assert "nonsense" in capsys.readouterr().err
    with pytest.raises(ValueError, match="nonsense"):
        run_bench(only=["nonsense"], out=tmp_path)
    assert not (tmp_path / "bench.json").exists()


def test_baton_alternates_steps_and_releases_a_finished_runner():
    """The GRPO A/B comparison relies on this: A and B take turns step by step; when one finishes early, the
    other runs on alone instead of waiting forever."""
    baton = _Baton(["a", "b"])
    order: list[str] = []

    def runner(name: str, steps: int) -> None:
        for i in range(steps):
            baton.take(name, started=i > 0)
            order.append(name)
            time.sleep(0.001)
        baton.finish(name)

    threads = [threading.Thread(target=runner, args=("a", 3)), threading.Thread(target=runner, args=("b", 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert order == ["a", "b", "a", "b", "a", "b", "b", "b"]


# ---- the throughput benchmarks the figures are made of -------------------------------------------------------
def test_benchmark_synthesis_local():
    r = benchmark_synthesis(3, 1, "local", sessions=2, turns=3)
    assert r["conversations"] == 3 and r["conversations_per_s"] > 0 and r["mb_per_s"] > 0


def test_benchmark_eval_throughput(conv26_path):
    r = benchmark_eval_throughput(conv26_path, "bm25", copies=1)
    assert r["questions"] == 199 and r["questions_per_s"] > 0 and r["conversations"] == 1


@pytest.mark.usefixtures("torch_one_thread")
def test_benchmark_generation(tiny_model_dir):
    r = benchmark_generation(tiny_model_dir, num_prompts=4, max_tokens=4, batch_size=4)
    assert r["batched_tokens"] == r["sequential_tokens"] > 0  # greedy: the same tokens either way
    assert r["batched_tokens_per_s"] > 0 and r["sequential_tokens_per_s"] > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_memrl_bench_quick_end_to_end(tmp_path):
    """What CI runs: every group, quick sizes, in a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "memrl.cli", "bench", "--quick", "--out", str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "bench.json").read_text())
    _check_schema(result)
    assert not result["errors"]
    groups = {f["name"].split(".")[0] for f in result["figures"]}
    assert groups >= {"bank", "synth", "env", "eval", "generation", "grpo", "ppo"}
    by_name = {f["name"]: f for f in result["figures"]}
    for name in ("grpo.memrl_seconds_per_step", "generation.transformers_batched_tokens_per_s",
                 "synth.ray_2_workers_conversations_per_s"):
        f = by_name[name]
        assert f["value"] > 0 and f["ratio"] > 0, f
    assert by_name["synth.ray_2_workers_conversations_per_s"]["met"] is None  # quick: below the 2000-conv target size
    share = by_name["env.reward_share_of_grpo_step_pct"]
    assert 0 < share["value"] < 100
    # The budget is 2 minutes on 2 cores; the suite runs beside other jobs, so allow slack here and
    # print the time (the report quotes it).
    print(f"memrl bench --quick: {elapsed:.0f} s, load {result['machine']['load_avg_start']}")
    assert elapsed < 360


def test_vllm_eval_figures_say_why_nothing_was_measured_without_venv_vllm(monkeypatch):
    """Without venv-vllm the vLLM eval figures are present, empty, and name what to run; nothing is claimed met."""
    from memrl.bench import cpu_speed

    monkeypatch.setattr(cpu_speed, "vllm_python", lambda: None)
    figs = cpu_speed._vllm_eval_figures("unused", 4, 2, {}, quick=False)
    assert [f.name for f in figs] == ["real_model.eval_seconds_per_question.5+5.vllm",
                                      "real_model.eval_seconds_per_question.30+30.vllm"]
    assert all(f.value is None and f.met is None and "make test-vllm" in f.note for f in figs)


def test_a_failing_measurement_child_is_an_error_result(tmp_path):
    """run_job (here with an explicit interpreter, as for venv-vllm): a child that fails gives an error result
    naming the cause (its last stderr line), not an exception or a number."""
    import sys

    from memrl.bench.cpu_speed import run_job

    r = run_job({"kind": "eval", "dtype": "bfloat16", "shared": True, "data": str(tmp_path), "k": 3, "n": 1,
                 "threads": 1}, python=sys.executable)
    assert set(r) == {"error"} and "validation.jsonl" in r["error"]
