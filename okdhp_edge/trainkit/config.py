"""Config files for training runs: dataclass sections read from YAML, `--set SECTION.KEY=VALUE`
overrides, deep merges, and strict type checks.

Every key and value is checked against the dataclass, so a typo fails at once, naming the file or
flag, the key, and the valid keys or values, instead of hours into a run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

__all__ = ["AMP_MODES", "ConfigError", "build_config", "merge_config", "parse_override", "parse_yaml", "read_yaml"]


AMP_MODES = ("auto", "off", "bf16", "fp16")  # system.amp of both trainers


class ConfigError(ValueError):
    """A config file or override that cannot describe a run; the message names the source and the fix."""


class RunConfig:
    """Base of a trainer's top-level config dataclass: its dict and YAML forms, and construction
    from a merged dict that checks every key's type, then the trainer's own `validate`."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>"):
        cfg = build_config(cls, data, source)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "<config>") -> None:
        """Value checks beyond types; each trainer's config says what its values may be."""
        raise NotImplementedError


def parse_override(text: str) -> dict[str, Any]:
    """'optim.lr=1e-3' -> {'optim': {'lr': 0.001}} (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. optim.lr=1e-3")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({err})") from None
    out: dict[str, Any] = {}
    node = out
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = parsed
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    return parse_yaml(path.read_text(encoding="utf-8"), str(path))


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config sections (section: {{key: value}})")
    return data


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = value
    return base


def build_config(cls: type, data: Any, source: str, prefix: str = ""):
    where = f"{source}: {prefix.rstrip('.') or 'top level'}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {', '.join(valid)}")
    return cls(**{name: _coerce(data[name], hints[name], source, f"{prefix}{name}") for name in valid if name in data})


def _coerce(value: Any, hint: Any, source: str, key: str) -> Any:
    """Check `value` against a type hint (int, float, bool, str, X | None, list[X], dict, dataclass)."""
    where = f"{source}: {key}"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], source, key)
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value if value is not None else {}, source, f"{key}.")
    if origin is list:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [v.strip() for v in value.split(",")] if isinstance(value, str) else [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {where}")
