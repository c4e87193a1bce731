"""`memrl train`: recipes, the CLI, episode-mode rollouts, schedules, learning on tiny tasks, resume after kill -9.

The real-model recipes cannot run here; they are checked to parse and to build their trainer objects with the
tiny offline model substituted. Runs that take more than a few seconds are marked `slow`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs" / "train").glob("*.yaml"))
TINY = [p for p in RECIPES if p.stem.endswith(("_tiny", "_smollm2"))]  # CPU recipes (tiny model; SmolLM2-135M)
REAL = [p for p in RECIPES if p not in TINY]




def _tiny(tiny_model_dir, synth_dir, out, **kw) -> list[str]:
    """Overrides that put a recipe on the tiny model, the tiny data and CPU."""
    base = {"model.path": str(tiny_model_dir), "use_vllm": "false", "model.dtype": "float32", "max_steps": "2",
            "data.path": str(synth_dir), "output_dir": str(out), "report_to": "[none]", "init_from": "''"}
    base.update({k: str(v) for k, v in kw.items()})
    return [f"{k}={v}" for k, v in base.items()]


def _train_cfg(**kw):
    """A TrainConfig from keyword values (nested sections as dicts), validated like a recipe."""
    from omegaconf import OmegaConf

    from memrl.train.config import TrainConfig

    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig),
                                              {"trl": {"gradient_checkpointing": False}, **kw}))
    cfg.validate()
    return cfg


# ---------------------------------------------------------------------------------------------------------
# Recipes and the CLI
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_and_its_header_says_how_to_run_it(path):
    from memrl.train.commands import load_recipe

    cfg, answer = load_recipe(str(path))
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert f"--config configs/train/{path.name}" in header[0]
    if path in REAL:
        assert any("CANNOT RUN ON THE CPU MACHINES" in line for line in header)
        assert cfg.model.path.startswith("/models/")
    else:
        # CPU recipes train on data under runs/data/ that the header names, and (beyond the shared runs/data/synth)
        # says how to make: a `memrl synth` and/or `memrl data split-questions` line
        assert cfg.data.path.startswith("runs/data/") and not cfg.grpo.use_vllm
        assert any(cfg.data.path in line for line in header), f"{path.name}: the header never names {cfg.data.path}"
        if cfg.data.path != "runs/data/synth":  # the shared default (docs/TRAINING.md's first command makes it)
            assert any("memrl synth" in line or "memrl data split-questions" in line for line in header)
        if cfg.data.path.endswith("conv26_split"):
            assert any("memrl data split-questions" in line for line in header)
    assert (answer is not None) == (cfg.schedule.kind in ("alternate", "joint"))
    if answer is not None:
        assert (cfg.role, answer.role) == ("manager", "answer")
        assert Path(cfg.output_dir).parent == Path(answer.output_dir).parent


def test_real_recipes_carry_the_papers_hyperparameters():
    from memrl.train.commands import load_recipe

    for path in REAL:
        cfg, _ = load_recipe(str(path))
        assert cfg.model.dtype == "bfloat16" and cfg.temperature == 1.0, path.name
        if cfg.algo == "ppo":
            assert (cfg.ppo.learning_rate, cfg.ppo.critic_learning_rate) == (1e-6, 1e-5), path.name
        elif cfg.algo == "grpo":
            assert cfg.grpo.use_vllm and cfg.learning_rate == (1e-5 if cfg.model.lora else 1e-6), path.name
    models = {load_recipe(str(p))[0].model.path for p in REAL}
    assert {"/models/Qwen2.5-3B-Instruct", "/models/Qwen2.5-7B-Instruct", "/models/Llama-3.1-8B-Instruct"} <= models


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_recipe_builds_its_trainers_with_the_tiny_model(path, tiny_model_dir, synth_dir, tmp_path,
                                                             torch_one_thread):
    from memrl.train.commands import dry_run, load_recipe

    cfg, answer = load_recipe(str(path), _tiny(tiny_model_dir, synth_dir, tmp_path / "run"))
    result = dry_run(cfg, answer)
    built = result["built"]
    assert len(built) == (2 if answer is not None else 1)
    for b, c in zip(built, [cfg, answer]):
        assert b["trainer"] == {"sft": "SFTTrainer", "grpo": "GRPOTrainer", "ppo": "PPOTrainer"}[c.algo]
        if c.model.lora:
            assert b["model"].startswith("Peft") and 0 < b["trainable_parameters"] < b["parameters"] / 2
        else:
            assert b["trainable_parameters"] == b["parameters"]
        if c.algo == "grpo" and c.role == "manager" and c.manager_mode == "episode":
            assert b["rollout_func"] == "EpisodeRollout" and b["reward_funcs"] == ["episode_reward"]
        # the policy's lr as built: PPO's is ppo.learning_rate (Memory-R1's 1e-6), never the SFT/GRPO field
        assert b["learning_rate"] == (c.ppo.learning_rate if c.algo == "ppo" else c.learning_rate), path.name
    assert not (tmp_path / "run").exists()  # a dry run writes nothing where the run would go


@pytest.mark.parametrize("path", TINY, ids=lambda p: p.stem)
def test_tiny_recipe_builds_its_trainers(path, tiny_model_dir, synth_dir, tmp_path, torch_one_thread):
    from memrl.train.commands import dry_run, load_recipe

    cfg, answer = load_recipe(str(path), _tiny(tiny_model_dir, synth_dir, tmp_path / "run"))
    assert all(b["rows"] > 0 or b["trainer"] == "PPOTrainer" for b in dry_run(cfg, answer)["built"])


def test_unknown_config_key_exits_2_naming_it(capsys):
    from memrl.cli import main

    recipe = str(ROOT / "configs/train/grpo_answer_tiny.yaml")
    assert main(["train", "--config", recipe, "learning_rat=1e-3"]) == 2
    err = capsys.readouterr().err
    assert "learning_rat" in err and "learning_rate" in err
    assert main(["train", "--config", recipe, "manager_env.relatd_k=3"]) == 2
    err = capsys.readouterr().err
    assert "manager_env.relatd_k" in err and "related_k" in err
    assert main(["train", "--config", recipe, "answer.seed=1"]) == 2  # answer.* only for alternate / joint
    assert "answer.*" in capsys.readouterr().err


def test_commands_module_imports_no_torch():
    code = "import sys, memrl.train.commands; print('torch' in sys.modules, 'trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------------------
# Learning on tiny tasks through the trainer's own SFT / GRPO plumbing
def _chat_rows(n: int = 64):
    return [{"prompt": [{"role": "user", "content": f"Compute {a} and {b}."}]} for a in range(8) for b in range(8)][:n]


def test_sft_loss_drops(tiny_model_dir, tmp_path, torch_one_thread):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.sft import sft_trainer
    from memrl.train.common import log_callback
    from memrl.train.run import MetricsLog
    from memrl.train.trainer import fit

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [dict(r, completion=[{"role": "assistant", "content": '{"ops":[{"op":"ADD"}]}'}]) for r in _chat_rows()]
    cfg = _train_cfg(algo="sft", role="manager", output_dir=str(tmp_path), max_steps=30, learning_rate=3e-3,
                     batch_size=8)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    fit(cfg, sft_trainer(cfg, model, tok, rows, tmp_path, (log_callback(log, cfg.role),)), tmp_path)
    losses = [r["loss"] for r in log.read() if "loss" in r]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:3]) / 3, losses


def test_grpo_reward_rises_on_a_tiny_task(tiny_model_dir, tmp_path, torch_one_thread):
    """feasibility.md section 3: 'completion contains ADD' goes from ~0 to 1 (here by step ~16 for seeds 0-2)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.grpo import grpo_trainer
    from memrl.train.common import log_callback
    from memrl.train.run import MetricsLog
    from memrl.train.trainer import fit

    def contains_add(completions, **kw):
        return [1.0 if "ADD" in c[0]["content"] else 0.0 for c in completions]

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = _train_cfg(algo="grpo", role="answer", output_dir=str(tmp_path), max_steps=30, learning_rate=3e-3,
                     batch_size=32, grpo={"num_generations": 16}, max_completion_length=16, seed=0)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    fit(cfg, grpo_trainer(cfg, model, tok, Dataset.from_list(_chat_rows()), [contains_add], tmp_path,
                          callbacks=(log_callback(log, cfg.role),)), tmp_path)
    rewards = [r["reward"] for r in log.read() if "reward" in r]
    assert len(rewards) == 30
    assert sum(rewards[:3]) / 3 <= 0.2 and sum(rewards[-5:]) / 5 >= 0.9, rewards


# ---------------------------------------------------------------------------------------------------------
# Episode mode
@pytest.fixture(scope="module")
def windows(synth_dir):
    from memrl.envs.manager.config import ManagerEnvConfig
    from memrl.train.data import load_split
    from memrl.train.episodes import EpisodeWindows

    return EpisodeWindows(load_split(str(synth_dir), "train"), ManagerEnvConfig(related_k=3, max_related=6), steps=3)


def _segments(ids, mask):
    out, cur, flag = [], [], mask[0]
    for t, m in zip(ids, mask):
        if m != flag:
            out.append((flag, cur))
            cur, flag = [], m
        cur.append(t)
    out.append((flag, cur))
    return out


def test_episode_rollout_masks_env_turns_and_replays_exactly(windows, tiny_model_dir):
    """A scripted policy writes ADD at every step: the env turns are the next steps' prompts as user turns
    (mask 0, logprob 0), rendered from the bank the policy's own writes produced."""
    from transformers import AutoTokenizer

    from memrl.policies.backends import render_prompt
    from memrl.train.episodes import EpisodeRollout, next_user_content

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    w = next(w for w in windows.windows if w.end - w.start == 3)
    cid = windows.conversations[w.conversation_index].conversation_id
    action = tok('{"ops":[{"op":"ADD"}]}', add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def scripted(inputs, max_new, t):
        return [(action[:m], [-0.5] * len(action[:m])) for m in max_new]

    out = EpisodeRollout(windows).rollout([w.prompt(cid)] * 2, tok, scripted, 64, 100_000, [tok.eos_token_id])
    ids, mask, lps = out["completion_ids"][0], out["env_mask"][0], out["logprobs"][0]
    assert len(ids) == len(mask) == len(lps)
    assert all((lp == -0.5) if m else (lp == 0.0) for m, lp in zip(mask, lps))
    segs = _segments(ids, mask)
    assert [m for m, _ in segs] == [1, 0, 1, 0, 1] and all(s == action for m, s in segs if m)
    # Replay the same actions on a fresh episode: same prompts, same rewards.
    ep = windows.episode(w)
    assert out["prompt_ids"][0] == render_prompt(tok, ep.observe().messages)
    total = 0.0
    for k, (m, seg) in enumerate(segs):
        if m:
            total += ep.apply(tok.decode(seg, skip_special_tokens=True)).reward
        else:
            text = tok.decode(seg)
            assert text == ("\n<|im_start|>user\n" + next_user_content(ep.observe().messages)
                            + "<|im_end|>\n<|im_start|>assistant\n")
    assert out["episode_reward"][0] == pytest.approx(total) and out["episode_num_steps"] == [3, 3]
    assert out["episode_cut"] == [False, False]
    # The window is cut where the next step would not fit the model's positions.
    tight = len(out["prompt_ids"][0]) + len(action) + 5
    cut = EpisodeRollout(windows).rollout([w.prompt(cid)], tok, scripted, 64, tight, [tok.eos_token_id])
    assert cut["episode_cut"] == [True] and cut["episode_num_steps"] == [1]
    assert len(cut["prompt_ids"][0]) + len(cut["completion_ids"][0]) <= tight


def test_episode_mode_runs_grpo_steps(synth_dir, tiny_model_dir, tmp_path, torch_one_thread):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.grpo import grpo_trainer
    from memrl.train.common import log_callback
    from memrl.train.episodes import EpisodeReward, make_episode_rollout, parse_window_prompt
    from memrl.train.run import MetricsLog
    from memrl.train.trainer import fit

    cfg = _train_cfg(algo="grpo", role="manager", manager_mode="episode", output_dir=str(tmp_path), max_steps=2,
                     batch_size=4, grpo={"num_generations": 2}, max_completion_length=8, data={"path": str(synth_dir)},
                     manager_env={"related_k": 3, "max_related": 6})
    ds, rollout = make_episode_rollout(cfg)
    assert len(ds) == len(rollout.windows.windows) and parse_window_prompt(ds[0]["prompt"]) == (0, 0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    trainer = fit(cfg, grpo_trainer(cfg, model, tok, ds, [EpisodeReward()], tmp_path, rollout_func=rollout,
                                    callbacks=(log_callback(log, cfg.role),)), tmp_path)
    assert trainer.state.global_step == 2
    rows = log.read()
    assert [r["step"] for r in rows if "reward" in r] == [1, 2] and all("episode/steps" in r for r in rows[:2])
    out = rollout([ds[0]["prompt"]] * 2, trainer)  # the live trainer's model, sampling with logprobs
    for ids, mask, lps in zip(out["completion_ids"], out["env_mask"], out["logprobs"]):
        assert len(ids) == len(mask) == len(lps) and mask[0] == 1 and mask[-1] == 1
        assert all(lp <= 0 for lp in lps) and all(lp == 0.0 for m, lp in zip(mask, lps) if not m)
        assert 0 in mask  # at least one env turn: the window has 3+ steps
    assert out["completion_ids"][0] != out["completion_ids"][1]  # group members sample independently


def test_windowed_env_shares_window_starts_and_truncates(synth_dir, tiny_model_dir, tmp_path, torch_one_thread):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.ppo import PPOConfig
    from memrl.train.episodes import make_env_factory
    from memrl.train.ppo import EnvRollouts, PPOTrainer

    cfg = _train_cfg(algo="ppo", role="manager", manager_mode="episode", output_dir=str(tmp_path),
                     data={"path": str(synth_dir)}, manager_env={"related_k": 3, "max_related": 6})
    factory = make_env_factory(cfg)
    wins = factory.windows.windows
    i = next(j for j, w in enumerate(wins) if w.start > 0 and w.end - w.start == 4)
    a, b = factory(), factory()
    obs_a, info = a.reset(options={"window": i})
    assert obs_a == b.reset(options={"window": i})[0] and info["start_step"] == wins[i].start
    flags = [a.step('{"ops":[{"op":"NOOP"}]}')[2:4] for _ in range(4)]
    assert flags[:3] == [(False, False)] * 3 and flags[3][1] or flags[3][0]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ppo = PPOTrainer(model, tok, EnvRollouts(factory, max_steps=10),
                     PPOConfig(total_iterations=1, batch_size=2, minibatch_size=4, max_new_tokens=6, critic="shared",
                               learning_rate=1e-3), tmp_path)
    (m,) = ppo.train(progress=False)
    assert 1 <= m["steps_per_episode"] <= 4 and m["reward"] < 0  # a random model's ops do not parse


# ---------------------------------------------------------------------------------------------------------
# Schedules
def test_plateau_fires_after_patience_flat_steps_only():
    from transformers import TrainerControl, TrainerState

    from memrl.train.schedules import Plateau, plateau_callback

    rising = Plateau(patience=3, window=2)
    assert not any(rising.update(v) for v in [0.1, 0.2, 0.3, 0.2, 0.4, 0.5, 0.6])
    flat = Plateau(patience=3, window=1)
    assert [flat.update(v) for v in [0.5, 0.6, 0.6, 0.5, 0.55]] == [False, False, False, False, True]
    cb = plateau_callback(patience=2, window=1)
    state, control = TrainerState(), TrainerControl()
    for step, r in enumerate([0.3, 0.2, 0.1], start=1):
        state.global_step = step
        cb.on_log(None, state, control, logs={"reward": r})
    assert control.should_training_stop and cb.stopped_at == 3


def test_two_stage_switches_margin_and_chains_models(synth_dir, tiny_model_dir, tmp_path, torch_one_thread):
    from omegaconf import OmegaConf

    from memrl.train.commands import load_recipe, run_recipe

    cfg, _ = load_recipe(str(ROOT / "configs/train/picker_two_stage_tiny.yaml"),
                         _tiny(tiny_model_dir, synth_dir, tmp_path, max_steps=3, batch_size=4, num_generations=2,
                               max_completion_length=8, logging_steps=1, save_steps=0, **{"schedule.switch_step": 1}))
    s = run_recipe(cfg)
    assert s["switched_at"] == 1 and s["switch_reason"] == "switch_step"
    c1 = OmegaConf.load(tmp_path / "stage1/config.yaml")
    c2 = OmegaConf.load(tmp_path / "stage2/config.yaml")
    assert (c1.answer_env.picker_margin, c2.answer_env.picker_margin) == (3, 1)
    assert (c1.max_steps, c2.max_steps) == (1, 2) and c2.init_from == str(tmp_path / "stage1/final_model")
    assert json.loads((tmp_path / "summary.json").read_text())["final_model"] == str(tmp_path / "stage2/final_model")


def test_alternation_rounds_chain_both_policies(synth_dir, tiny_model_dir, tmp_path, torch_one_thread):
    from omegaconf import OmegaConf

    from memrl.train.commands import load_recipe, run_recipe

    cfg, answer = load_recipe(str(ROOT / "configs/train/alternate_tiny.yaml"),
                              _tiny(tiny_model_dir, synth_dir, tmp_path, max_steps=1, batch_size=4,
                                    num_generations=2, max_completion_length=8,
                                    **{"schedule.rounds": 2, "data.max_conversations": 1}))
    s = run_recipe(cfg, answer)
    assert [r["round"] for r in s["rounds"]] == [1, 2]
    a1 = OmegaConf.load(tmp_path / "answer/round1/config.yaml")
    m2 = OmegaConf.load(tmp_path / "manager/round2/config.yaml")
    assert a1.answer_env.manager == f"transformers:{tmp_path / 'manager/round1/final_model'}"
    assert m2.init_from == str(tmp_path / "manager/round1/final_model")
    # Round 1's probes are answered by the answer agent's starting model, round 2's by its round-1 checkpoint.
    assert s["rounds"][0]["probe_answerer"] == f"transformers:{tiny_model_dir}"
    assert s["rounds"][1]["probe_answerer"] == f"transformers:{tmp_path / 'answer/round1/final_model'}"
    assert s["answer_final"] == str(tmp_path / "answer/round2/final_model")


@pytest.mark.slow
def test_joint_interleaves_two_continuous_runs(synth_dir, tiny_model_dir, tmp_path, torch_one_thread):
    from memrl.train.commands import load_recipe, run_recipe

    cfg, answer = load_recipe(str(ROOT / "configs/train/joint_tiny.yaml"),
                              _tiny(tiny_model_dir, synth_dir, tmp_path, max_steps=2, batch_size=4,
                                    num_generations=2, max_completion_length=8,
                                    **{"schedule.switch_step": 1, "data.max_conversations": 1}))
    s = run_recipe(cfg, answer)
    assert len(s["chunks"]) == 2 and (s["manager_steps"], s["answer_steps"]) == (2, 2)
    for role in ("manager", "answer"):
        steps = [r["step"] for r in map(json.loads, (tmp_path / role / "metrics.jsonl").read_text().splitlines())
                 if "reward" in r]
        assert steps == [1, 2]  # one run per policy: the second chunk resumed the first
        state = json.loads((tmp_path / role / "checkpoint-2/trainer_state.json").read_text())
        assert state["global_step"] == 2


# ---------------------------------------------------------------------------------------------------------
# Checkpoints: resume after kill -9, corrupted files
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "memrl.cli", "train", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _kill_after_checkpoint(cmd: list[str], ckpt: Path, marker: str, timeout: float = 240) -> None:
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        t0 = time.time()
        while not (ckpt / marker).exists():
            assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {ckpt} was written"
            assert time.time() - t0 < timeout, "no checkpoint in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _logged(out: Path, key: str) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(int(r["step"]), r[key]) for r in rows if key in r]


@pytest.mark.slow
def test_sft_resumes_after_kill_9_without_lost_or_repeated_steps(synth_dir, tiny_model_dir, tmp_path):
    recipe = str(ROOT / "configs/train/sft_manager_tiny.yaml")
    common = ["max_steps=24", "save_steps=4", "batch_size=4", "logging_steps=1", f"data.path={synth_dir}",
              f"model.path={tiny_model_dir}"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_cli("--config", recipe, *common, f"output_dir={ref}"), env=_env(), check=True, cwd=ROOT,
                   capture_output=True)
    _kill_after_checkpoint(_cli("--config", recipe, *common, f"output_dir={run}"), run / "checkpoint-4",
                           "trainer_state.json")
    assert not (run / "summary.json").exists()
    done = subprocess.run(_cli("--config", recipe, *common, f"output_dir={run}", "resume=true"), env=_env(),
                          check=False, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads((run / "checkpoint-24/trainer_state.json").read_text())
    assert state["global_step"] == 24
    got, want = _logged(run, "loss"), _logged(ref, "loss")
    assert [s for s, _ in got] == list(range(1, 25))  # no lost, no repeated step
    assert [s for s, _ in want] == list(range(1, 25))
    assert all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for (_, a), (_, b) in zip(got, want)), (got, want)


@pytest.mark.slow
def test_ppo_resumes_after_kill_9_like_an_uninterrupted_run(synth_dir, tiny_model_dir, tmp_path):
    recipe = str(ROOT / "configs/train/ppo_answer_tiny.yaml")
    common = ["max_steps=6", "save_steps=2", "batch_size=4", "max_completion_length=6", "ppo.minibatch_size=4",
              f"data.path={synth_dir}", f"model.path={tiny_model_dir}", "init_from=''"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_cli("--config", recipe, *common, f"output_dir={ref}"), env=_env(), check=True, cwd=ROOT,
                   capture_output=True)
    _kill_after_checkpoint(_cli("--config", recipe, *common, f"output_dir={run}"), run / "checkpoint-2",
                           "trainer_state.json")
    done = subprocess.run(_cli("--config", recipe, *common, f"output_dir={run}", "resume=true"), env=_env(),
                          check=False, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for key in ("reward", "pg_loss", "vf_loss", "entropy", "completion_length"):
        got, want = _logged(run, key), _logged(ref, key)
        assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, 7)), key
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5, abs=1e-6), key


def test_corrupted_checkpoint_names_the_file(synth_dir, tiny_model_dir, tmp_path, capsys, torch_one_thread):
    from memrl.cli import main

    recipe = str(ROOT / "configs/train/sft_answer_tiny.yaml")
    args = ["train", "--config", recipe, "max_steps=2", "save_steps=1", "batch_size=2", f"data.path={synth_dir}",
            f"model.path={tiny_model_dir}", f"output_dir={tmp_path}"]
    assert main(args) == 0
    weights = next((tmp_path / "checkpoint-2").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a torn write
    capsys.readouterr()
    assert main([*args[:4], "max_steps=3", *args[5:], "resume=true"]) == 1
    assert str(weights) in capsys.readouterr().err


def test_torn_checkpoint_is_set_aside_on_resume(tmp_path):
    """A kill during a TRL save leaves a checkpoint without trainer_state.json (written last): resume must
    continue from the newest complete one."""
    from memrl.train.run import set_aside_torn_checkpoints

    for n in (2, 4):
        (tmp_path / f"checkpoint-{n}").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert set_aside_torn_checkpoints(tmp_path) == [tmp_path / "checkpoint-4.incomplete"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4.incomplete"]


def test_grpo_with_kl_continuing_a_lora_adapter_saves_only_the_trained_adapter(tiny_model_dir, synth_dir, tmp_path):
    """GRPO beta > 0 from a LoRA run's final_model: TRL keeps the start as a frozen second adapter ("ref"). The
    final_model holds the trained adapter only, and it is the trained one (it moved away from the start)."""
    from safetensors.torch import load_file

    from memrl.train.trainer import train

    common = {"role": "answer", "model": {"path": str(tiny_model_dir), "lora": True, "lora_r": 4, "dtype": "float32"},
              "data": {"path": str(synth_dir)}, "report_to": ["none"], "learning_rate": 1e-2, "max_steps": 1,
              "batch_size": 4, "max_completion_length": 8}
    sft = _train_cfg(algo="sft", output_dir=str(tmp_path / "sft"), sft={"teacher": "gold_answer"}, **common)
    start = Path(train(sft, progress=False)["final_model"])
    grpo = _train_cfg(algo="grpo", output_dir=str(tmp_path / "grpo"), init_from=str(start),
                      grpo={"num_generations": 2, "beta": 0.04}, **common)
    final = Path(train(grpo, progress=False)["final_model"])
    assert not (final / "ref").exists(), sorted(p.name for p in final.iterdir())
    before, after = load_file(start / "adapter_model.safetensors"), load_file(final / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before), "final_model holds the start's adapter"
