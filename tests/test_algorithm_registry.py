"""Training algorithms are one registry (memrl.train.algorithms): an algorithm is one object in one file, found by
name, and a new one runs through `memrl.train.trainer.train` with nothing else edited. Recipes written with the
keys that moved into an algorithm's section keep working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_registry_names_the_algorithms_and_refuses_an_unknown_one():
    from memrl.config import ConfigError, load_config
    from memrl.train import algorithms
    from memrl.train.config import TrainConfig

    assert algorithms.names() == ["sft", "grpo", "ppo"]
    assert algorithms.get("grpo").name == "grpo"
    with pytest.raises(ConfigError, match=r"algo: 'reinforce' is not one of \['sft', 'grpo', 'ppo'\]"):
        algorithms.get("reinforce")
    with pytest.raises(ConfigError, match="algo: 'dpo' is not one of"):
        load_config(TrainConfig, None, ["algo=dpo"])
    with pytest.raises(ValueError, match="already registered"):
        algorithms.register(algorithms.get("sft"))


def test_each_algorithm_with_settings_is_a_recipe_section():
    from memrl.train import algorithms
    from memrl.train.config import TrainConfig

    cfg = TrainConfig()
    for algo in algorithms.registered():
        assert isinstance(getattr(cfg, algo.name), algo.settings), algo.name


def test_keys_that_moved_into_a_section_are_read_under_their_new_name(tmp_path):
    from memrl.config import ConfigError, load_config
    from memrl.train.config import TrainConfig

    f = tmp_path / "r.yaml"
    f.write_text("algo: sft\nteacher: bm25\nteacher_error_rate: 0.2\nnum_generations: 4\nbatch_size: 8\n")
    cfg = load_config(TrainConfig, f, ["use_vllm=true", "shared_prefix=false"])
    assert (cfg.sft.teacher, cfg.sft.teacher_error_rate, cfg.grpo.num_generations) == ("bm25", 0.2, 4)
    assert cfg.grpo.use_vllm and not cfg.grpo.shared_prefix and not cfg.ppo.shared_prefix
    # a later layer wins, as for any key; the former and the new key disagreeing in one layer is an error
    assert load_config(TrainConfig, f, ["grpo.num_generations=2"]).grpo.num_generations == 2
    with pytest.raises(ConfigError, match="'num_generations' .* is now 'grpo.num_generations', which is also set"):
        load_config(TrainConfig, None, ["num_generations=4", "grpo.num_generations=2"])
    with pytest.raises(ConfigError, match="unknown config key 'num_generation'"):
        load_config(TrainConfig, None, ["num_generation=4"])
    with pytest.raises(ConfigError, match="grpo.num_generations must be > 0"):
        load_config(TrainConfig, None, ["num_generations=0"])


def test_a_resume_of_a_run_saved_with_the_former_keys_is_not_refused_for_them(tmp_path):
    from memrl.config import as_dict
    from memrl.train.config import TrainConfig
    from memrl.train.guards import check_resume_config

    now = as_dict(TrainConfig(algo="grpo"))
    old = {k: v for k, v in now.items() if k not in ("sft", "grpo")}
    old["ppo"] = {k: v for k, v in now["ppo"].items() if k != "shared_prefix"}
    old.update(num_generations=8, beta=0.0, loss_type="dapo", use_vllm=False, shared_prefix=True,
               teacher="gold_ops", teacher_error_rate=0.3, teacher_wrong_id_share=0.5)
    (tmp_path / "config.yaml").write_text(json.dumps(old))
    check_resume_config(tmp_path, now, moved=TrainConfig.MOVED_KEYS, schema=TrainConfig)  # as the trainer calls it
    (tmp_path / "config.yaml").write_text(json.dumps({**old, "num_generations": 4}))
    with pytest.raises(Exception, match=r"grpo.num_generations: 4 -> 8"):
        check_resume_config(tmp_path, now, moved=TrainConfig.MOVED_KEYS, schema=TrainConfig)


def test_a_run_saved_before_keys_were_added_resumes_and_is_reused(tmp_path):
    """A config.yaml without the keys added since (TrainConfig.ADDED_KEYS) reads with the values that do what the
    run did: the resume check and the demos' finished-run reuse accept it; a saved value that differs is refused."""
    from memrl.config import as_dict
    from memrl.train.config import ModelConfig, TrainConfig
    from memrl.train.guards import check_resume_config
    from memrl.train.run import finished_run

    cfg = TrainConfig(algo="sft", output_dir=str(tmp_path), model=ModelConfig(lora=False))
    now = as_dict(cfg)
    old = {k: v for k, v in now.items() if k not in ("probed_only", "start_steps")}
    old["sft"] = {k: v for k, v in now["sft"].items() if k != "compact_lm_head"}
    (tmp_path / "config.yaml").write_text(json.dumps(old))
    check_resume_config(tmp_path, now, moved=TrainConfig.MOVED_KEYS, schema=TrainConfig)
    (tmp_path / "summary.json").write_text(json.dumps({"final_model": str(tmp_path / "final_model")}))
    (tmp_path / "final_model").mkdir()
    (tmp_path / "final_model" / "config.json").write_text("{}")
    assert finished_run(cfg) is not None
    (tmp_path / "config.yaml").write_text(json.dumps({**old, "start_steps": 3}))
    with pytest.raises(Exception, match=r"start_steps: 3 -> 0"):
        check_resume_config(tmp_path, now, moved=TrainConfig.MOVED_KEYS, schema=TrainConfig)
    assert finished_run(cfg) is None


# ---------------------------------------------------------------------------------------------------------
# A toy algorithm, registered here: REINFORCE with a constant baseline, one sampled completion per step.
class _ToyTrainer:
    def __init__(self, cfg, model, tok, rows, reward_funcs, log):
        import torch

        self.cfg, self.model, self.tok, self.rows, self.reward_funcs, self.log = cfg, model, tok, rows, reward_funcs, log
        self.opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)

    def train(self):
        import torch

        torch.manual_seed(self.cfg.seed)
        for step in range(1, self.cfg.max_steps + 1):
            row = self.rows[step % len(self.rows)]
            ids = self.tok.apply_chat_template(row["prompt"], add_generation_prompt=True, return_tensors="pt")
            ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
            with torch.no_grad():
                seq = self.model.generate(ids, do_sample=True, max_new_tokens=self.cfg.max_completion_length,
                                          pad_token_id=self.tok.pad_token_id)
            text = self.tok.decode(seq[0, ids.shape[1]:], skip_special_tokens=True)
            columns = {k: [v] for k, v in row.items() if k != "prompt"}
            reward = sum(float(f(prompts=[row["prompt"]], completions=[[{"role": "assistant", "content": text}]],
                                 **columns)[0] or 0.0) for f in self.reward_funcs)
            logits = self.model(seq).logits[:, ids.shape[1] - 1:-1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, seq[:, ids.shape[1]:, None]).sum()
            loss = -(reward - 0.5) * logp
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.log({"step": step, "reward": reward, "loss": float(loss.detach())})


@pytest.fixture
def reinforce():
    from memrl.train import algorithms

    class Reinforce(algorithms.Algorithm):
        name = "reinforce"
        implementation = "a test's toy trainer"

        def build_trainer(self, cfg, model, tok, rows, reward_funcs, out, log=None, callbacks=()):
            return _ToyTrainer(cfg, model, tok, rows, reward_funcs, log)

    algorithms.register(Reinforce())
    yield "reinforce"
    algorithms.unregister("reinforce")


def test_a_toy_algorithm_registered_in_a_test_trains_end_to_end(reinforce, synth_dir, tiny_model_dir, tmp_path,
                                                                 torch_one_thread):
    from memrl.config import load_config
    from memrl.train.config import TrainConfig
    from memrl.train.guards import check_recipe
    from memrl.train.trainer import train

    out = tmp_path / "run"
    cfg = load_config(TrainConfig, ROOT / "configs/train/ppo_answer_tiny.yaml",
                      [f"algo={reinforce}", f"model.path={tiny_model_dir}", "init_from=''", "model.dtype=float32",
                       f"data.path={synth_dir}", f"output_dir={out}", "max_steps=2", "max_completion_length=6",
                       "learning_rate=1e-3", "save_steps=0", "max_train_rows=8"])
    check_recipe(cfg)
    summary = train(cfg, progress=False)
    assert (out / "final_model" / "config.json").exists() and (out / "final_model" / "model.safetensors").exists()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["algo"] == "reinforce" and saved["steps"] == 2 and saved["final_model"] == str(out / "final_model")
    assert saved == {**summary, "wall_seconds": saved["wall_seconds"]}
    assert saved["reward_first"] is not None and saved["shared_prefix"] is False
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert "REINFORCE (a test's toy trainer)" in (out / "final_model" / "README.md").read_text()


def test_a_toy_algorithm_gets_the_shared_checks(reinforce):
    from memrl.config import ConfigError, load_config
    from memrl.train.config import TrainConfig
    from memrl.train.guards import check_recipe

    cfg = load_config(TrainConfig, None, [f"algo={reinforce}", "reward_control=shuffle"])  # an RL algorithm
    with pytest.raises(ConfigError, match="REINFORCE is memrl's own trainer and has no settings of its own"):
        check_recipe(load_config(TrainConfig, None, [f"algo={reinforce}", "trl.beta=0.1"]))
    with pytest.raises(ConfigError, match="memrl's REINFORCE logs to metrics.jsonl"):
        check_recipe(load_config(TrainConfig, None, [f"algo={reinforce}", "report_to=[wandb]"]))
    assert cfg.reward_control == "shuffle"
