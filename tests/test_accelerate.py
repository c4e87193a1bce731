"""GRPO (TRL) and PPO (memrl's, made data-parallel by scripts/accelerate_smoke.py) under
`accelerate launch --num_processes 2` on CPU (gloo), two steps each, producing safetensors checkpoints.

What would fail if multi-process training were broken: both processes must report a gloo process group of size 2,
roll out different rows, and still end with bit-identical weights (gradients averaged across processes) that
differ from the initial ones; the saved final model must be exactly those weights; the checkpoints must load
back (PPO: into a single-process PPOTrainer, which then resumes at the right iteration).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "accelerate_smoke.py"
CONFIG = REPO / "configs" / "accelerate" / "cpu_2proc.yaml"



def test_accelerate_config_files_load():
    """Every file in configs/accelerate/ is a config accelerate itself accepts (the multi-GPU ones cannot run here)."""
    from accelerate.commands.config.config_args import load_config_from_file

    files = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))
    assert CONFIG in files and len(files) >= 3
    for f in files:
        cfg = load_config_from_file(str(f))
        assert cfg.num_processes >= 2, f
        assert f.read_text().startswith("#"), f"{f.name}: the header comment must say how to launch it"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smoke_module():
    spec = importlib.util.spec_from_file_location("accelerate_smoke", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _launch(algo: str, out: Path) -> dict:
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate) if accelerate.exists() else "accelerate", "launch", "--config_file", str(CONFIG),
           "--main_process_port", str(_free_port()), str(SCRIPT), "--algo", algo, "--out", str(out), "--steps", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, f"accelerate launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads((out / "report.json").read_text())


def _check_common(report: dict, out: Path) -> None:
    assert report["world_size"] == 2
    ranks = report["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:
        assert r["world_size"] == 2 and r["backend"] == "gloo" and r["distributed_type"].endswith("MULTI_CPU"), r
        assert r["iterations"] == 2
        assert r["seen"], "a process scored no rows"
    # Each process rolled out its own rows ...
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"]), (ranks[0]["seen"], ranks[1]["seen"])
    # ... and yet both ended with the same, trained weights: gradients were averaged across processes.
    assert report["weights_identical_across_processes"], [r["params_sha256"] for r in ranks]
    assert report["weights_changed"]
    # The final model is a safetensors Hugging Face directory holding exactly those weights.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = out / "final_model"
    assert (final / "model.safetensors").exists() and not list(final.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(final, use_safetensors=True)
    AutoTokenizer.from_pretrained(final)
    assert _smoke_module().fingerprint(model) == ranks[0]["params_sha256"]


@pytest.mark.slow
def test_grpo_two_processes(tmp_path):
    out = tmp_path / "grpo"
    report = _launch("grpo", out)
    _check_common(report, out)
    ckpt = out / "checkpoint-2"
    assert (ckpt / "model.safetensors").exists()
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == 2


@pytest.mark.slow
def test_ppo_two_processes(tmp_path):
    out = tmp_path / "ppo"
    report = _launch("ppo", out)
    _check_common(report, out)
    ranks = report["ranks"]
    assert ranks[0]["critic_sha256"] == ranks[1]["critic_sha256"]  # the critic is synchronised too
    # The checkpoint is memrl's usual PPO checkpoint: it loads into a single-process trainer and resumes there.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.ppo import PPOConfig
    from memrl.train.ppo import PPOTrainer, RowRollouts

    ckpt = out / "checkpoint-2"
    assert (ckpt / "policy" / "model.safetensors").exists() and (ckpt / "critic.safetensors").exists()
    base = out / "base_model"
    smoke = _smoke_module()
    trainer = PPOTrainer(AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base),
                         RowRollouts([{"prompt": "x"}], lambda completions, **kw: [0.0] * len(completions)),
                         PPOConfig(total_iterations=3, batch_size=2, minibatch_size=2, ppo_epochs=1, seed=0,
                                   critic="separate"), tmp_path / "resume")
    trainer.load_checkpoint(ckpt)
    assert trainer.iteration == 2
    assert smoke.fingerprint(trainer.policy) == ranks[0]["params_sha256"]
    assert smoke.fingerprint(trainer.critic) == ranks[0]["critic_sha256"]
