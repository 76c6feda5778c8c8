"""Errors raised by export, each naming what went wrong and how to fix it."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

__all__ = ["ConversionError", "ExportError", "MissingDependencyError", "conversion_error", "require"]


class ExportError(ValueError):
    """An export request that cannot be carried out (bad option, unreadable student, ...)."""


class MissingDependencyError(ImportError):
    """An optional package that this format needs is not installed; the message names the extra."""


class ConversionError(RuntimeError):
    """A converter rejected the network; the message names the format and the operator."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency or say exactly which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module.split('.')[0]!r}, which is not importable ({err}); "
            f"install it with: pip install 'okdhp-edge[{extra}]'"
        ) from None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OPERATOR = re.compile(
    r"(aten\.[A-Za-z0-9_.]+|torch\.ops\.[A-Za-z0-9_.]+|tfl\.[A-Za-z0-9_]+|stablehlo\.[A-Za-z0-9_]+|mil\.[A-Za-z0-9_]+)"
)


def conversion_error(fmt: str, err: BaseException) -> ConversionError:
    """Wrap a converter's exception into one line naming the format and the operator(s) it hit."""
    text = _ANSI.sub("", f"{type(err).__name__}: {err}")
    ops = sorted(set(_OPERATOR.findall(text)))
    where = f" at operator(s) {', '.join(ops[:5])}" if ops else ""
    first = text.strip().splitlines()[0][:400]
    return ConversionError(f"conversion to {fmt} failed{where}: {first}")
