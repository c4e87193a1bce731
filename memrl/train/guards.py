"""Refuse loudly rather than finish with a wrong result.

Three ways a training run used to exit 0 with something wrong in its run directory:

- a fresh run wrote into a directory that still held another run's `checkpoint-*`, and a later
  `resume=true` continued the *old* run (steps 3, 101, ..., 105): `claim_run_dir` refuses a directory that
  holds a run unless the user asks to resume it or to replace it (`overwrite=true`, cleared atomically);
- `resume=true` with a changed recipe continued a checkpoint made under another config:
  `check_resume_config` compares the saved `config.yaml` with this one and names every differing key;
- a diverged run (learning_rate=1e9) saved an all-NaN `final_model`: `FiniteMetrics` stops the run at the
  first non-finite loss / grad norm it logs, and `assert_finite_weights` refuses to save non-finite weights;
- `resume=true` after the files behind the same `data.path` were rewritten (re-synthesized with another seed)
  continued the checkpoint on other data: every run records the sha256 of the training files it reads
  (`data_fingerprint.json`) and `check_data_fingerprint` refuses a resume whose files differ.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

from memrl.config import ConfigError, saved_config_as_current
from memrl.errors import MemrlError
from memrl.files import write_json
from memrl.train import algorithms

# What a run writes into its output_dir (memrl.train.run); anything else there (a user's notes, a
# prepared base model) does not make the directory "another run".
RUN_ARTIFACTS = ("config.yaml", "metrics.jsonl", "summary.json", "final_model", "curves.png", "data_fingerprint.json")
DATA_FINGERPRINT = "data_fingerprint.json"  # sha256 of each training file the run read, written at its start

# Keys a resumed run may change: they do not alter what the checkpoint's weights and optimizer state mean.
# The frozen partner (probe_answerer / answer_env.manager) changes between the chunks of a joint schedule by
# design: each chunk resumes the same run against the other policy's newest model.
RESUMABLE_CHANGES = frozenset({"resume", "max_steps", "save_steps", "logging_steps", "report_to", "output_dir",
                               "overwrite", "probe_answerer", "answer_env.manager"})

# Logged metrics whose non-finite value means the weights are (or are about to be) garbage.
WATCHED_METRICS = ("loss", "grad_norm", "pg_loss", "vf_loss", "entropy", "approx_kl")


class RunDirError(MemrlError, RuntimeError):
    """The output directory holds another run, or a resume does not match the run it would continue."""


class DivergenceError(MemrlError, RuntimeError):
    """Training produced a non-finite loss or non-finite weights; no final model is saved."""


def run_files(out: Path) -> list[str]:
    """Names of another run's artifacts in `out` (empty when `out` is new or holds no run)."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir()
                  if p.name in RUN_ARTIFACTS or (p.name.startswith("checkpoint-") and p.is_dir()))


def claim_run_dir(out: Path, *, resume_requested: bool, overwrite: bool) -> None:
    """Make `out` this run's directory, or refuse. Resuming keeps it; `overwrite` clears it atomically
    (renamed aside first, so a kill never leaves half of the old run mixed with the new one)."""
    found = run_files(out)
    if resume_requested or not found:
        out.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise RunDirError(f"{out} already holds a run ({shown}): continue it with resume=true, choose another "
                          f"output_dir, or replace it with overwrite=true")
    aside = out.with_name(f".{out.name}.replaced-{os.getpid()}")
    out.rename(aside)
    out.mkdir(parents=True)
    shutil.rmtree(aside, ignore_errors=True)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def config_differences(saved: dict, current: dict, ignore: Collection[str] = ()) -> list[str]:
    """`key: saved -> current` for every key that differs, except those a resume may change and `ignore`
    (keys a recipe no longer has because another key governs them; an older run's config.yaml holds them)."""
    a, b = _flatten(saved), _flatten(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_CHANGES or key.split(".")[0] in RESUMABLE_CHANGES or key in ignore:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return diffs


def check_resume_config(run_dir: Path, current: dict, ignore: Collection[str] = (),
                        moved: Mapping[str, str | Sequence[str]] | None = None, schema: type | None = None) -> None:
    """A resume continues only the run it was given the config of. A run directory without a config.yaml
    cannot show that its checkpoints belong to this recipe, so it is refused too. `moved` (the schema's
    MOVED_KEYS) and `schema` (its RENAMED_KEYS, nested schemas included) read a config.yaml saved before keys
    moved or were renamed under their new names."""
    from omegaconf import OmegaConf

    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        if any(run_dir.glob("checkpoint-*")):
            raise RunDirError(f"resume: {run_dir} has checkpoints but no config.yaml, so they cannot be shown to "
                              f"belong to this run; start a new output_dir")
        return
    try:
        saved = OmegaConf.to_container(OmegaConf.load(saved_path))
    except Exception as e:  # yaml's errors come in several types
        raise RunDirError(f"resume: {saved_path} cannot be read ({type(e).__name__}: {e})") from None
    saved = saved_config_as_current(saved or {}, schema, moved)
    diffs = config_differences(saved or {}, current, ignore)
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise RunDirError(f"resume: the run in {run_dir} was made with another config ({shown}); resume with the "
                          f"same recipe, or start a new output_dir")


class DataChangedError(RunDirError):
    """A resume would continue a checkpoint on training data other than the data the run started on."""

    exit_code = 2


def data_fingerprint(files: Iterable[str | os.PathLike]) -> dict[str, str]:
    """{file: sha256 of its bytes} for the training files a run reads (a missing file is left out: reading
    the data reports it)."""
    out = {}
    for f in files:
        if not Path(f).is_file():
            continue
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        out[str(f)] = h.hexdigest()
    return out


def check_data_fingerprint(run_dir: Path, now: dict[str, str]) -> None:
    """Refuse to continue a checkpoint of `run_dir` when its training files differ from those it started on
    (naming the file and both fingerprints). A run made before fingerprints were recorded is not checked."""
    path = run_dir / DATA_FINGERPRINT
    if not path.exists():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))["files"]
        assert isinstance(before, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise DataChangedError(f"resume: {path} cannot be read, so the training data cannot be shown to be the data "
                               f"{run_dir} started on; start a new output_dir") from None
    for name in sorted(set(before) | set(now)):
        if before.get(name) != now.get(name):
            was, is_ = (before.get(name) or "absent")[:16], (now.get(name) or "absent")[:16]
            raise DataChangedError(f"resume: the training data changed since {run_dir} started: {name} had sha256 "
                                   f"{was}... then and has {is_}... now; resume with the data the run started on, "
                                   f"or start a new output_dir")


def record_data_fingerprint(run_dir: Path, files: dict[str, str], data_path: str, split: str) -> None:
    write_json(run_dir / DATA_FINGERPRINT, {"data.path": data_path, "split": split, "files": files})


class FiniteMetrics:
    """Wraps a metrics logger: logs the row, then stops the run if a watched metric is NaN or infinite."""

    def __init__(self, log: Callable[[dict], None], learning_rate: float | None = None):
        self.log = log
        self.learning_rate = learning_rate

    def __call__(self, metrics: dict[str, Any]) -> None:
        self.log(metrics)
        bad = [k for k in WATCHED_METRICS if isinstance(metrics.get(k), (int, float))
               and not isinstance(metrics.get(k), bool) and not math.isfinite(float(metrics[k]))]
        if bad:
            lr = f" (learning_rate {self.learning_rate:g})" if self.learning_rate is not None else ""
            raise DivergenceError(f"training diverged at step {metrics.get('step', '?')}: non-finite "
                                  f"{', '.join(bad)}{lr}; no final model was saved. Lower the learning rate")


def assert_finite_weights(model: Any) -> None:
    """Refuse to save a model with a NaN or infinite parameter (names the first one)."""
    import torch  # deferred: guards is imported by light code paths too

    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise DivergenceError(f"parameter {name} is not finite after training; the final model was not saved. "
                                  f"Lower the learning rate")


def check_recipe(cfg: Any) -> None:
    """What the dataclass schema cannot see, asked of the recipe's algorithm (memrl.train.algorithms): e.g. that
    `report_to` names a logger that exists and is installed, that `trl:` names knobs of the TRL config of this
    algorithm, and that memrl's own trainers are not handed TRL-only settings they would silently ignore. Raises
    ConfigError (a ValueError): the CLI prints it in one line."""
    algorithms.get(cfg.algo).check_recipe(cfg)
