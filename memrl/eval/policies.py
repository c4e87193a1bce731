"""The policies an evaluation runs: references (baseline, checkpoint, run directory) with their fingerprints,
loading them, and the optional LLM judge."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memrl.config import ConfigError
from memrl.eval.config import BACKEND_KINDS, POLICY_ALIASES, PREDICTIONS_PREFIX, EvalConfig
from memrl.eval.predictions import PredictionsAnswerer
from memrl.models import REGISTRY, has_chat_template, resolve_model
from memrl.policies.baselines import ANSWER_BASELINES, MANAGER_BASELINES, RENAMED, make_baseline
from memrl.policies.judge import LLMJudge
from memrl.policies.llm import LLMAnswerer, LLMManager
from memrl.protocol.generation import PLAIN_PROMPT, SamplingParams, resolve_chat_template

# ---- policies ----------------------------------------------------------------------------------------------
_LOADED: dict[tuple, Any] = {}  # models loaded in this process (a worker serves many conversations)


@dataclass
class PolicyRef:
    """A policy as the driver knows it: enough to load it in a worker and to fingerprint it for the cache."""

    role: str  # "answerer" | "manager"
    kind: str  # "baseline" | "checkpoint" | "object"
    name: str
    spec: str | None = None  # what the user wrote
    baseline: str | None = None  # baseline name (kind baseline)
    backend: str | None = None  # transformers | vllm (kind checkpoint)
    path: str | None = None  # resolved checkpoint directory (kind checkpoint)
    fingerprint: str = ""
    deterministic: bool = True
    obj: Any = None  # the policy object itself (kind object)
    run: dict[str, Any] | None = None  # what the training run's config.yaml says (algo, role, base model)
    prompt_format: str | None = None  # kind checkpoint: how chat prompts are rendered (see prompt_format())

    def describe(self) -> dict[str, Any]:
        d = {"spec": self.spec, "name": self.name, "kind": self.kind, "path": self.path, "backend": self.backend,
             "training_run": self.run}
        if self.prompt_format is not None:
            d["prompt_format"] = self.prompt_format
        return d


def prompt_format(path: Path, cfg: EvalConfig) -> str:
    """How a checkpoint's chat prompts are rendered, as results.json records it: "chat template (the
    model's own)", "chat template chatml" / "chat template FILE" (chat_template=), "plain (chat_template=plain)",
    or PLAIN_PROMPT when the model has no template (memrl.protocol.generation.plain_prompt)."""
    if cfg.chat_template == "plain":
        return "plain (chat_template=plain)"
    if cfg.chat_template:
        return f"chat template {cfg.chat_template}"
    return "chat template (the model's own)" if has_chat_template(path) else PLAIN_PROMPT


def did_you_mean(raw: str, candidates: list[str]) -> str:
    """'; did you mean X?' for the closest candidate (difflib), or ''."""
    close = difflib.get_close_matches(str(raw).strip(), candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def checkpoint_dir(raw: str, role: str, what: str) -> Path:
    """A checkpoint directory from a path that may be a run directory (final_model/, final_model/<role>/)."""
    p = Path(resolve_model(raw, what)).expanduser()
    if not p.exists():
        if raw in RENAMED:
            raise ConfigError(f"{what}={raw}: renamed {RENAMED[raw]!r} (BM25 top-1 over the dialogue turns with the "
                              "extractive reader; it never read the full context)")
        names = sorted(ANSWER_BASELINES if role == "answerer" else MANAGER_BASELINES)
        extra = ", oracle" if role == "answerer" else ""
        raise ConfigError(f"{what}={raw}: no such checkpoint directory; expected a baseline name ({', '.join(names)}"
                          f"{extra}), a registered model ({', '.join(sorted(REGISTRY))}; see `memrl models list`), "
                          f"transformers:PATH, a checkpoint directory or a run directory with final_model/"
                          f"{did_you_mean(raw, [*names, *([extra[2:]] if extra else []), *REGISTRY])}")
    if (p / "final_model").is_dir():
        p = p / "final_model"
    if not ((p / "config.json").is_file() or (p / "adapter_config.json").is_file()) and (p / role).is_dir():
        p = p / role
    if not ((p / "config.json").is_file() or (p / "adapter_config.json").is_file()):
        raise ConfigError(f"{what}={raw}: {p} is not a checkpoint directory (no config.json or adapter_config.json)")
    adapter = p / "adapter_config.json"
    if adapter.is_file():  # read here, before any shard loads it: a broken one is one line, not a shard traceback
        try:
            base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        except (json.JSONDecodeError, AttributeError) as e:
            raise ConfigError(f"{what}={raw}: {adapter} is not a valid adapter config ({e})") from None
        if not base:
            raise ConfigError(f"{what}={raw}: {adapter} names no base model (base_model_name_or_path)")
    return p


def weights_fingerprint(p: Path) -> str:
    files = sorted(f for f in p.iterdir() if f.is_file() and (f.suffix in (".safetensors", ".json")))
    h = hashlib.sha256(str(p.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def policy_ref(policy: Any, role: str, cfg: EvalConfig, what: str | None = None) -> PolicyRef:
    """Resolve a policy spec (or object) without loading any model; errors name the spec."""

    what = what or ("policy" if role == "answerer" else "manager")
    if not isinstance(policy, str):
        method = "answer" if role == "answerer" else "decide"
        if not callable(getattr(policy, method, None)):
            raise ConfigError(f"{what}: {type(policy).__name__} has no {method}() method (not a {role})")
        name = str(getattr(policy, "name", type(policy).__name__))
        sampling = getattr(policy, "sampling", None)
        if hasattr(policy, "backend"):
            # A live model: its weights may change between calls (training), so its answers are never reused.
            fp = f"live:{uuid.uuid4().hex}"
        else:
            simple = {k: v for k, v in vars(policy).items()
                      if not k.startswith("_") and isinstance(v, (str, int, float, bool, type(None)))}
            fp = f"{type(policy).__module__}.{type(policy).__qualname__}:{name}:{json.dumps(simple, sort_keys=True)}"
        deterministic = getattr(sampling, "temperature", 0.0) == 0.0 and not getattr(policy, "seeded", False)
        return PolicyRef(role, "object", name, fingerprint=fp, deterministic=deterministic, obj=policy)
    spec = policy.strip()
    if not spec:
        raise ConfigError(f"{what}= is empty; give a baseline name or a checkpoint")
    table = ANSWER_BASELINES if role == "answerer" else MANAGER_BASELINES
    base = POLICY_ALIASES.get(spec, spec) if role == "answerer" else spec
    if base in table:  # a seeded baseline (random_pick, noisy_teacher) runs once per seed, with that seed
        return PolicyRef(role, "baseline", spec, spec, baseline=base, fingerprint=f"baseline:{base}",
                         deterministic=not getattr(table[base], "seeded", False))
    if spec in ANSWER_BASELINES or spec in MANAGER_BASELINES or spec in POLICY_ALIASES:
        raise ConfigError(f"{what}={spec}: that baseline is not a {role}; {role}s: {sorted(table)}")
    if spec.startswith(PREDICTIONS_PREFIX):  # a released predictions file, replayed (memrl.data.loaders.timedial_results)
        raw = spec[len(PREDICTIONS_PREFIX):].strip()
        p = Path(raw).expanduser()
        if role != "answerer":
            raise ConfigError(f"{what}={spec}: a predictions file is an answer policy, not a manager")
        if not raw:
            raise ConfigError(f"{what}={spec}: no file named after 'predictions:'; give {what}=predictions:FILE "
                              "(a Memory-T1 results file such as full_prompt_results.json)")
        if p.is_dir():
            inside = sorted(f.name for f in p.glob("*.json*"))[:4]
            raise ConfigError(f"{what}={spec}: {p} is a directory; name the results file in it"
                              + (f" ({', '.join(inside)})" if inside else ""))
        if not p.is_file():
            raise ConfigError(f"{what}={spec}: no such predictions file {str(p)!r}")
        return PolicyRef(role, "predictions", f"predictions:{p.name}", spec, path=str(p),
                         fingerprint=f"predictions:{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}")
    kind, sep, raw = spec.partition(":")
    if not sep or kind not in BACKEND_KINDS:
        kind, raw = "transformers", spec
    path = checkpoint_dir(raw, role, what)
    # another prompt, other answers: the template's text (not only its name or path) is in the cache key
    template = (f":chat_template={hashlib.sha256(str(resolve_chat_template(cfg.chat_template)).encode()).hexdigest()[:12]}"
                if cfg.chat_template else "")
    return PolicyRef(role, "checkpoint", path.name if path.name not in ("final_model", role) else str(path), spec,
                     backend="transformers" if kind == "hf" else kind, path=str(path),
                     fingerprint=f"{kind}:{weights_fingerprint(path)}{template}", deterministic=cfg.temperature == 0.0,
                     run=run_info(path), prompt_format=prompt_format(path, cfg))


def run_info(model_dir: Path) -> dict[str, Any] | None:
    """algo / role / base model from the config.yaml of the run directory a final_model/ sits in, if any."""
    for run_dir in (model_dir.parent, model_dir.parent.parent):
        f = run_dir / "config.yaml"
        if model_dir.name in ("final_model", "answerer", "manager") and f.is_file():
            try:
                from omegaconf import OmegaConf

                c = OmegaConf.to_container(OmegaConf.load(f))
            except Exception:  # noqa: BLE001 - a foreign or broken config: the evaluation does not depend on it
                return {"run_dir": str(run_dir), "config": "unreadable"}
            if isinstance(c, dict):
                model = c.get("model") if isinstance(c.get("model"), dict) else {}
                return {"run_dir": str(run_dir), "algo": c.get("algo"), "role": c.get("role"),
                        "base_model": model.get("path")}
    return None


def load_policy(ref: PolicyRef, cfg: EvalConfig) -> Any:
    """The policy object of a reference (baselines fresh per call; checkpoints loaded once per process)."""
    if ref.kind == "object":
        return ref.obj

    if ref.kind == "baseline":
        return make_baseline(ref.baseline)
    if ref.kind == "predictions":
        key = ("predictions", ref.path, ref.fingerprint)
        if key not in _LOADED:
            _LOADED[key] = PredictionsAnswerer(ref.path)
        return _LOADED[key]
    from memrl.policies.backends import make_backend  # deferred: imports torch

    if cfg.torch_threads:
        import torch  # deferred: heavy

        torch.set_num_threads(cfg.torch_threads)
    key = (ref.role, ref.backend, ref.path, ref.fingerprint, cfg.device, cfg.dtype, cfg.share_prefix, cfg.batch_size,
           cfg.answer_mode, cfg.manager_prompt, cfg.temperature, cfg.max_new_tokens, cfg.manager_max_new_tokens,
           cfg.chat_template)
    if key not in _LOADED:
        kwargs = ({"device": cfg.device, "dtype": cfg.dtype, "batch_size": cfg.batch_size,
                   "share_prefix": cfg.share_prefix} if ref.backend == "transformers" else
                  {"dtype": cfg.dtype} if ref.backend == "vllm" and cfg.dtype != "auto" else {})
        kwargs["chat_template"] = resolve_chat_template(cfg.chat_template)
        backend = make_backend(f"{ref.backend}:{ref.path}", **kwargs)
        if ref.role == "answerer":
            sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_new_tokens)
            _LOADED[key] = LLMAnswerer(backend, answer_mode=cfg.answer_mode, sampling=sampling, name=ref.name)
        else:
            sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.manager_max_new_tokens)
            _LOADED[key] = LLMManager(backend, prompt=cfg.manager_prompt, sampling=sampling, name=ref.name)
    return _LOADED[key]


@contextlib.contextmanager
def sampling_seed(policy: Any, seed: int):
    """Give a policy the evaluation seed for the duration (restored afterwards): an LLM policy's sampling params,
    or a seeded baseline's own `seed` (`seeded = True`: random_pick, noisy_teacher)."""
    if getattr(policy, "seeded", False) and hasattr(policy, "seed"):
        own = policy.seed
        policy.seed = seed
        try:
            yield
        finally:
            policy.seed = own
        return
    sp = getattr(policy, "sampling", None)
    if sp is None or not dataclasses.is_dataclass(sp) or not hasattr(sp, "seed"):
        yield
        return
    policy.sampling = dataclasses.replace(sp, seed=seed)
    try:
        yield
    finally:
        policy.sampling = sp


def make_judge(cfg: EvalConfig, out: Path | None):
    """The LLM judge of `cfg.judge` (cache in out/judge_cache.jsonl), or None. A bad spec is a ConfigError."""
    if not cfg.judge:
        return None
    kind, sep, raw = cfg.judge.partition(":")
    if not sep or kind not in BACKEND_KINDS:
        kind, raw = "transformers", cfg.judge
    p = Path(resolve_model(raw, "judge")).expanduser()
    if not p.is_dir():
        raise ConfigError(f"judge={cfg.judge}: judge model directory {p} not found; the judge metric needs a local "
                          f"model (transformers:PATH or a registered model: {', '.join(sorted(REGISTRY))})"
                          f"{did_you_mean(raw, list(REGISTRY))}. Remove 'judge' from metrics to evaluate without it.")
    if (p / "final_model").is_dir():
        p = p / "final_model"
    from memrl.policies.backends import make_backend  # torch: only once the judge model is known to exist

    kwargs = {"device": cfg.device, "batch_size": cfg.batch_size} if kind in ("transformers", "hf") else {}
    backend = make_backend(f"{kind}:{p}", **kwargs)
    try:
        return LLMJudge(backend, cfg.judge_prompt, cache_path=(out / "judge_cache.jsonl") if out else None)
    except ValueError as e:
        raise ConfigError(f"judge_prompt: {e}") from None
