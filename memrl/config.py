"""Structured configs: dataclass schemas -> OmegaConf, YAML files and `key=value` overrides.

Usage (every command does this):

    cfg = load_config(TrainConfig, "configs/train/demo.yaml", ["trainer.lr=1e-3", "seed=1"])

A misspelt key is an error that names the key and the closest valid one; a value of the wrong type names the
key and the expected type. A key a schema has moved (its `MOVED_KEYS`: former name -> new name or names) is read
under its new name, so recipes written before the move keep working. `ConfigError` carries that message; the CLI prints it and exits with code 2.
Hydra is not used: it caps omegaconf below 2.4.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from memrl.errors import MemrlError
from memrl.files import atomic_write

T = TypeVar("T")


class ConfigError(MemrlError, ValueError):
    """A config file or override is invalid. The message names the key."""

    exit_code = 2


def _valid_keys(schema: DictConfig, parent: str | None) -> list[str]:
    node = schema
    if parent:
        try:
            node = OmegaConf.select(schema, parent)
        except OmegaConfBaseException:
            node = None
    if isinstance(node, DictConfig):
        return [str(k) for k in node.keys()]
    return []


def _unknown_key_message(schema: DictConfig, full_key: str, source: str) -> str:
    where = f" (in {source})" if source else ""
    # A schema may list keys that another key governs (`GOVERNED_KEYS`, e.g. TrainConfig's ppo.batch_size ->
    # batch_size): setting one would have no effect, so the error names the key that does.
    governed = getattr(schema._metadata.object_type, "GOVERNED_KEYS", {}).get(full_key)
    if governed:
        return (f"config key '{full_key}'{where} has no effect: the top-level key '{governed}' sets it; "
                f"set {governed}=... instead")
    parent, _, leaf = full_key.rpartition(".")
    keys = _valid_keys(schema, parent or None)
    close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.5)
    hint = f"; did you mean '{(parent + '.') if parent else ''}{close[0]}'?" if close else ""
    valid = f" Valid keys{' under ' + parent if parent else ''}: {', '.join(sorted(keys))}." if keys else ""
    return f"unknown config key '{full_key}'{where}{hint}{valid}"


def _check_keys(schema: DictConfig, data: Any, source: str, prefix: str = "") -> None:
    """Walk `data` and report the first key the schema does not have (with a suggestion)."""
    if not isinstance(data, dict):
        return
    for k, v in data.items():
        full = f"{prefix}{k}"
        node = OmegaConf.select(schema, prefix[:-1]) if prefix else schema
        if not isinstance(node, DictConfig):
            return
        # A dict-typed field (e.g. `trl: dict`) accepts any keys.
        if OmegaConf.is_dict(node) and node._metadata.object_type in (None, dict) and prefix:
            return
        if str(k) not in node:
            raise ConfigError(_unknown_key_message(schema, full, source))
        child = node[str(k)] if not OmegaConf.is_missing(node, str(k)) else None
        if isinstance(child, DictConfig) and isinstance(v, dict):
            _check_keys(schema, v, source, prefix=f"{full}.")


def _nested_schemas(schema_cls: type) -> dict[str, type]:
    """{field name: dataclass type} of the fields of `schema_cls` that are themselves schemas."""
    try:
        hints = typing.get_type_hints(schema_cls)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the defaults' types
        hints = {}
    out = {}
    for f in dataclasses.fields(schema_cls):
        t = hints.get(f.name)
        if not (isinstance(t, type) and dataclasses.is_dataclass(t)) and f.default_factory is not dataclasses.MISSING:
            t = type(f.default_factory())
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            out[f.name] = t
    return out


def renamed_keys(schema_cls: type, data: Any, source: str = "", _prefix: str = "") -> Any:
    """`data` (a config mapping) with every key a schema renamed under its new name: a schema lists
    `RENAMED_KEYS = {old: new}` (a ClassVar), and nested schemas are followed, so configs written before a
    rename still load. Giving a key under both names is a ConfigError."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(schema_cls):
        return data
    out = dict(data)
    for old, new in getattr(schema_cls, "RENAMED_KEYS", {}).items():
        if old in out:
            if new in out:
                where = f" (in {source})" if source else ""
                raise ConfigError(f"config keys '{_prefix}{old}' and '{_prefix}{new}'{where} name the same setting "
                                  f"('{old}' is its earlier name); give '{_prefix}{new}' only")
            out[new] = out.pop(old)
    for name, sub in _nested_schemas(schema_cls).items():
        if isinstance(out.get(name), dict):
            out[name] = renamed_keys(sub, out[name], source, f"{_prefix}{name}.")
    return out


def added_keys(data: Any, added: Mapping[str, Any]) -> Any:
    """`data` (a saved config mapping) with every key a schema added since (`ADDED_KEYS`: dotted key -> the value
    that does what runs saved before it did) filled in where absent, so a resume or a finished-run check does not
    refuse a run for a key it could not have had."""
    if not added or not isinstance(data, dict):
        return data
    out = copy.deepcopy(data)
    for key, value in added.items():
        *path, last = key.split(".")
        node: Any = out
        for part in path:
            if node.get(part) is None:  # absent, or an empty section
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):  # not a mapping: the comparison will name it
                break
        else:
            node.setdefault(last, copy.deepcopy(value))
    return out


def saved_config_as_current(data: Any, schema_cls: type | None = None,
                            moved: Mapping[str, str | Sequence[str]] | None = None) -> Any:
    """A run directory's saved config mapping read under today's keys: the keys in `moved` (a schema's MOVED_KEYS)
    under their new names, then, given `schema_cls`, its renamed keys (nested schemas included) and the keys it
    added since (`ADDED_KEYS`, with the value that does what the saved run did). The one reading that a resume
    check and a finished-run check compare against the current config."""
    data = move_keys(data, moved or {})
    if schema_cls is None:
        return data
    return added_keys(renamed_keys(schema_cls, data), getattr(schema_cls, "ADDED_KEYS", {}))


def move_keys(data: Any, moved: Mapping[str, str | Sequence[str]], source: str = "") -> Any:
    """`data` (a config mapping) with every key a schema has moved (`MOVED_KEYS`: former dotted key -> the dotted
    key or keys that replace it) written under its new name: a recipe, a command line or a run directory's
    config.yaml from before the move reads as it did. A former key and its new key set to different values in
    one file or one command line is an error naming both."""
    if not moved or not isinstance(data, dict):
        return data
    where = f" (in {source})" if source else ""
    out = copy.deepcopy(data)
    for old, new_keys in moved.items():
        parent, _, leaf = old.rpartition(".")
        holder: Any = out
        for part in parent.split(".") if parent else ():
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or leaf not in holder:
            continue
        value = holder.pop(leaf)
        for new in ([new_keys] if isinstance(new_keys, str) else new_keys):
            *path, last = new.split(".")
            node = out
            for part in path:
                if node.get(part) is None:  # absent, or an empty section (`grpo:`)
                    node[part] = {}
                node = node[part]
                if not isinstance(node, dict):
                    raise ConfigError(f"config key '{old}'{where} is now '{new}', but '{part}' is not a mapping")
            if last in node and node[last] != value:
                raise ConfigError(f"config key '{old}'{where} is now '{new}', which is also set (to {node[last]!r}); "
                                  f"set only '{new}'")
            node[last] = value
    return out


def _dotlist_to_dict(overrides: Sequence[str]) -> dict:
    out: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override of '{p}'")
        if value == "":  # `key=` (what a shell leaves of `key=''`) means the empty string, not null
            node[parts[-1]] = ""
            continue
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"x={value}"]))["x"]
        except Exception as e:  # yaml's scanner/parser/reader errors and omegaconf's come in many types
            raise ConfigError(f"override '{item}': cannot parse the value {value!r}: {_first_line(e)}") from None
        # YAML reads `policy=predictions:` as the mapping {predictions: null}; on a command line a mapping is
        # written in braces ({a: 1}), so a value without them stays the string that was typed.
        if isinstance(parsed, dict) and not value.lstrip().startswith("{"):
            parsed = value
        node[parts[-1]] = parsed
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _create(data: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as e:  # e.g. a null or non-string mapping key
        raise ConfigError(f"invalid config (in {source}): {_first_line(e)}") from None


def _bad_key(cfg: DictConfig, layer: dict, prefix: str = "") -> str:
    """The first key of `layer` that cannot be merged into `cfg` (to name it in the error)."""
    for k, v in layer.items():
        try:
            OmegaConf.merge(cfg, OmegaConf.create({k: v}))
        except Exception:
            child = cfg.get(k) if isinstance(cfg, DictConfig) else None
            if isinstance(v, dict) and isinstance(child, DictConfig):
                return _bad_key(child, v, f"{prefix}{k}.")
            return f"{prefix}{k}"
    return prefix.rstrip(".") or "?"


def read_config_file(path: str | os.PathLike) -> dict:
    """The mapping a YAML config file holds ({} for an empty file); a missing file, invalid YAML or a top level
    that is not a mapping is a one-line ConfigError. Every command reads its --config file through this."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"config file {path}: is a directory")
    try:
        loaded = OmegaConf.load(path)
        data = OmegaConf.to_container(loaded) if loaded is not None else {}
    except Exception as e:  # noqa: BLE001 - yaml's scanner/parser errors, omegaconf's, UnicodeDecodeError, OSError
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())[:200]}") from None
    if data and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got a {type(data).__name__}")
    return data or {}


def load_config(schema_cls: type[T], config_file: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Merge defaults <- YAML file <- `key=value` overrides and return a validated dataclass instance."""
    schema = OmegaConf.structured(schema_cls)
    moved = getattr(schema_cls, "MOVED_KEYS", {})
    layers = []
    if config_file is not None:
        path = Path(config_file)
        data = renamed_keys(schema_cls, move_keys(read_config_file(path), moved, str(path)), str(path))
        _check_keys(schema, data or {}, str(path))
        layers.append((_create(data or {}, str(path)), str(path)))
    over = renamed_keys(schema_cls, move_keys(_dotlist_to_dict(overrides), moved, "command line"), "command line")
    _check_keys(schema, over, "command line")
    layers.append((_create(over, "command line"), "command line"))
    cfg = schema
    for layer, source in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except ValidationError as e:
            key = e.full_key or "?"
            expected = _expected_type(schema_cls, key)
            raise ConfigError(f"config key '{key}' (from {source}): expected {expected}, got {e.value!r}"
                              if hasattr(e, "value") else f"config key '{key}' (from {source}): {e.msg}") from None
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise ConfigError(_unknown_key_message(schema, e.full_key or str(e.key), source)) from None
        except (OmegaConfBaseException, TypeError) as e:  # e.g. a mapping given for a list field
            key = _bad_key(cfg, OmegaConf.to_container(layer))
            raise ConfigError(f"config key '{key}' (from {source}): expected {_expected_type(schema_cls, key)} "
                              f"({_first_line(e)})") from None
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException:
        missing = []
    if missing:
        raise ConfigError(f"missing required config key(s): {', '.join(missing)}")
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"config key '{getattr(e, 'full_key', '?')}': {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return obj


def _expected_type(schema_cls: type, full_key: str) -> str:
    cls: Any = schema_cls
    ftype: Any = None
    for part in full_key.split("."):
        if not dataclasses.is_dataclass(cls):
            break
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            break
        ftype = fields[part].type
        cls = ftype if dataclasses.is_dataclass(ftype) else None
        if isinstance(ftype, str):
            return ftype
    if ftype is None:
        return "a value of the schema's type"
    return getattr(ftype, "__name__", str(ftype))


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_resolved(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the resolved config into a run directory (every run does this)."""

    path = Path(out_dir) / name
    with atomic_write(path) as f:
        f.write(to_yaml(cfg))
    return path


def as_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
