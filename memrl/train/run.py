"""A run directory: resolved config, metrics.jsonl, learning-curve PNGs, the final model with a model card.

    runs/<name>/
      config.yaml          the resolved config (every run writes it first)
      metrics.jsonl        one JSON object per logged step (TRL's log_history keys, or PPO's)
      checkpoint-<N>/      resumable checkpoints
      final_model/         Hugging Face directory (safetensors) + README.md model card
      curves.png           reward / loss / KL against step
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

from memrl.config import as_dict, saved_config_as_current
from memrl.errors import MemrlError


class MetricsLog:
    """Append-only JSONL; each line is flushed so a killed run keeps everything it logged."""

    def __init__(self, path: str | os.PathLike, resume: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not resume and self.path.exists():
            self.path.unlink()

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint (they will be logged again)."""
        rows = [r for r in self.read() if int(r.get("step", 0)) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def __call__(self, metrics: dict[str, Any]) -> None:
        clean = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                 for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a crash: everything before it is good
        return out


def plot_curves(rows: Iterable[dict[str, Any]], out_png: str | os.PathLike, title: str = "",
                keys: tuple[str, ...] = ("reward", "loss", "kl_to_ref", "kl", "pg_loss", "vf_loss", "entropy")) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "step" in r]
    present = [k for k in keys if any(k in r and _finite(r[k]) for r in rows)]
    if not rows or not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 3.0), squeeze=False)
    for ax, k in zip(axes[0], present):
        xs = [r["step"] for r in rows if k in r and _finite(r[k])]
        ys = [r[k] for r in rows if k in r and _finite(r[k])]
        ax.plot(xs, ys, lw=1.0, alpha=0.5)
        if len(ys) >= 5:
            w = max(2, len(ys) // 10)
            sm = [sum(ys[max(0, i - w + 1): i + 1]) / len(ys[max(0, i - w + 1): i + 1]) for i in range(len(ys))]
            ax.plot(xs, sm, lw=2.0)
        ax.set_title(k)
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def base_model_license(base: str) -> str:
    """The `license:` of the base model's own card (its README.md front matter), else "other": a fine-tuned
    model inherits its base's license, which memrl cannot know otherwise."""
    card = Path(base) / "README.md"
    try:
        head = card.read_text(encoding="utf-8").split("---")[1] if card.is_file() else ""
    except (OSError, UnicodeDecodeError, IndexError):
        head = ""
    for line in head.splitlines():
        if line.strip().startswith("license:"):
            return line.split(":", 1)[1].strip() or "other"
    return "other"


def write_model_card(model_dir: str | os.PathLike, *, algo: str, role: str, base: str, data: str, reward: str,
                     implementation: str = "", results: dict[str, Any] | None = None, config_yaml: str = "") -> Path:
    """final_model/README.md; `implementation` is what ran the algorithm (its `Algorithm.implementation`)."""
    lines = [
        "---",
        "library_name: transformers",
        f"license: {base_model_license(base)}",
        f"base_model: {json.dumps(str(base))}",
        "tags: [memrl, reinforcement-learning, memory-agent, " + algo + "]",
        "---",
        f"# memrl {role} policy ({algo.upper()})",
        "",
        f"- **Role**: {role} ({'memory manager: ADD/UPDATE/DELETE/NOOP' if role == 'manager' else 'answer agent'})",
        f"- **Algorithm**: {algo.upper()}" + (f" ({implementation})" if implementation else ""),
        f"- **Base model**: {base}",
        f"- **Data**: {data}",
        f"- **Reward**: {reward}",
        "- **Weights**: safetensors; load with `AutoModelForCausalLM.from_pretrained(dir)`",
        "",
    ]
    if results:
        lines += ["## Results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in results.items()]
        lines.append("")
    if config_yaml:
        lines += ["## Config", "", "```yaml", config_yaml.rstrip(), "```", ""]
    path = Path(model_dir) / "README.md"
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------------------------------------------------
# Resume: the one reading of `resume` ("" / false / no / 0: off; true / yes / 1 / latest: the newest complete
# checkpoint of the run directory; anything else: a checkpoint path), and the run-directory repairs before it.
RESUME_OFF = ("", "false", "no", "0")
RESUME_LATEST = ("true", "yes", "1", "latest")


def resuming(resume: str | None) -> bool:
    """Whether a run's `resume` setting asks to resume at all."""
    return str(resume or "").lower() not in RESUME_OFF


def resume_checkpoint(resume: str | None) -> Path | None:
    """The checkpoint path `resume` names explicitly; None when it is off or means "latest"."""
    if not resuming(resume) or str(resume).lower() in RESUME_LATEST:
        return None
    return Path(str(resume))


def resume_path(resume: str | None, out: Path) -> str | None:
    """The checkpoint a run with this `resume` setting continues from (None: start fresh)."""
    if not resuming(resume):
        return None
    explicit = resume_checkpoint(resume)
    if explicit is None:
        ck = latest_checkpoint(out)
        return str(ck) if ck else None
    if not explicit.exists():
        raise CheckpointError(f"resume: checkpoint {explicit} does not exist")
    return str(explicit)


class CheckpointError(MemrlError, RuntimeError):
    """A checkpoint cannot be loaded; the message names the bad file."""


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    out = Path(output_dir)
    # A kill during a save can leave a directory without trainer_state.json: never resume from that.
    cks = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                  and (p / "trainer_state.json").exists()),
                 key=lambda p: int(p.name.split("-")[-1]))
    return cks[-1] if cks else None


def set_aside_torn_checkpoints(out: Path) -> list[Path]:
    """Rename checkpoints cut by a kill during a TRL save (no trainer_state.json: transformers writes it last)
    to checkpoint-N.incomplete, so that resume continues from the newest complete checkpoint."""
    moved = []
    for ck in sorted(out.glob("checkpoint-*")):
        if ck.is_dir() and ck.name.split("-")[-1].isdigit() and not (ck / "trainer_state.json").exists():
            target = ck.with_name(ck.name + ".incomplete")
            if target.exists():
                shutil.rmtree(target)
            ck.rename(target)
            moved.append(target)
    return moved


def prepare_resume(cfg: Any) -> None:
    """Before resuming, in the run directory and in every run directory below it (schedules): set torn
    checkpoints aside, and drop the metrics.jsonl lines logged after the checkpoint the run will resume
    from (the run went on before it was killed; those steps will be logged again, once)."""
    out = Path(cfg.output_dir)
    if not out.exists():
        return
    explicit = resume_checkpoint(cfg.resume) is not None
    for d in sorted({out} | {p.parent for p in out.rglob("checkpoint-*")}):
        set_aside_torn_checkpoints(d)
        log = MetricsLog(d / "metrics.jsonl", resume=True)
        logged = [int(r["step"]) for r in log.read() if "step" in r]
        if not logged or _finished_at(d) >= max(logged):
            continue  # nothing logged, or a finished run (PPO does not checkpoint its last iteration)
        ck = Path(cfg.resume) if explicit and d == out else latest_checkpoint(d)
        step = _checkpoint_step(ck) if ck is not None else 0
        if step is not None:
            log.truncate_after(step)


def finished_run(cfg: Any) -> dict[str, Any] | None:
    """The summary of a finished run in cfg.output_dir made with this very config (its final model saved: an
    adapter for a LoRA run, full weights otherwise), else None. `resume` is not part of the comparison."""
    out = Path(cfg.output_dir)
    weights = "adapter_config.json" if cfg.model.lora else "config.json"
    summary, saved = out / "summary.json", out / "config.yaml"
    if not (summary.exists() and saved.exists() and (out / "final_model" / weights).exists()):
        return None
    try:
        # a run saved before keys moved into an algorithm's section, were renamed or were added reads under today's
        before = saved_config_as_current(OmegaConf.to_container(OmegaConf.load(saved), resolve=True), type(cfg),
                                         getattr(type(cfg), "MOVED_KEYS", {}))
        result = json.loads(summary.read_text())
    except Exception:  # noqa: BLE001 - an unreadable run is retrained, not trusted
        return None
    now = as_dict(cfg)
    for d in (before, now):
        d.pop("resume", None)
    return result if before == now and result.get("final_model") else None


def _finished_at(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def _checkpoint_step(ck: Path) -> int | None:
    tail = ck.name.split("-")[-1]
    if tail.isdigit():
        return int(tail)
    try:  # TRL checkpoints record global_step, memrl's PPO its iteration
        state = json.loads((ck / "trainer_state.json").read_text())
        return int(state.get("global_step", state.get("iteration")))
    except (OSError, ValueError, TypeError):
        return None


def write_run_readme(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """The run directory's README.md (TRL writes a placeholder card there, "fine-tuned version of [None]"):
    what the directory holds and the commands that use it."""
    run_dir = Path(run_dir)
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items() if isinstance(v, (int, float, str)))
    text = f"""# memrl run: {summary.get('algo', '?')} {summary.get('role', '?')}

| field | value |
|---|---|
{rows}

- `config.yaml`: the resolved config (rerun: `memrl train --config {run_dir / 'config.yaml'}`)
- `metrics.jsonl`, `curves.png`: one row per logged step; reward / loss / KL curves
- `checkpoint-*/`: resumable checkpoints (`memrl train --config {run_dir / 'config.yaml'} resume=true`)
- `final_model/`: the trained policy (safetensors, with its model card); evaluate it with
  `memrl eval --config configs/eval/<benchmark>.yaml data=FILE policy=transformers:{run_dir / 'final_model'}`
"""
    path = run_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
