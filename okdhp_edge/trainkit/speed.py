"""Speed switches both trainers share: mixed precision (which ones a device runs natively, the
autocast and grad scaler of one), and a run's CPU thread count that does not outlive the run."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .config import AMP_MODES, ConfigError

__all__ = ["AmpError", "amp_candidates", "amp_setup", "kept_threads", "native_bf16"]


class AmpError(ConfigError):
    """An AMP mode this device cannot run."""


def native_bf16(device: torch.device) -> bool:
    """True where bf16 runs in hardware: CUDA compute capability >= 8.0 (emulation on V100/T4 is slow
    and does not count), or a CPU with AVX512-BF16 / AMX that oneDNN uses."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def amp_candidates(mode: str, device: torch.device) -> list[str]:
    """The precisions `mode` allows on `device`, as amp_setup labels them ('off', 'bf16', 'fp16').

    auto: fp32, and the half precision the device runs natively (CUDA: bf16 from compute capability
    8.0, else fp16 with a GradScaler; CPU: bf16 with AVX512-BF16 / AMX). Which one is faster depends
    on the network and the memory format (narrow convolutions lose to the casts; on a GPU NCHW bf16
    can trail fp32), so the caller measures.
    """
    if mode not in AMP_MODES:
        raise AmpError(f"amp {mode!r} is not valid; valid: {', '.join(AMP_MODES)}")
    if mode == "auto":
        if device.type == "cuda":
            return ["off", "bf16" if native_bf16(device) else "fp16"]
        return ["off", "bf16"] if native_bf16(device) else ["off"]
    if mode == "fp16" and device.type != "cuda":
        raise AmpError(
            "amp fp16 needs a CUDA device (fp16 autocast on the CPU is slower than fp32); use auto, bf16 or off"
        )
    return [mode]


def amp_setup(mode: str, device: torch.device) -> tuple[contextlib.AbstractContextManager, torch.amp.GradScaler, str]:
    """Autocast context, grad scaler and a label for one resolved precision ('off', 'bf16', 'fp16').

    fp16 gets a GradScaler (its range underflows small gradients); bf16 has fp32's range and needs none.
    """
    if mode not in ("off", "bf16", "fp16"):
        raise AmpError(f"amp_setup takes a resolved precision (off, bf16, fp16), not {mode!r}")
    scaler_device = "cuda" if device.type == "cuda" else "cpu"
    if mode == "off":
        return contextlib.nullcontext(), torch.amp.GradScaler(scaler_device, enabled=False), "fp32"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(scaler_device, enabled=mode == "fp16")
    # no weight-cast cache: every weight is used once per forward, so it saves nothing, and a CUDA
    # graph capture must not keep casts made outside the graph (PyTorch's CUDA-graph notes)
    return (
        torch.autocast(device.type, dtype=dtype, cache_enabled=False),
        scaler,
        "bf16" if mode == "bf16" else "fp16+GradScaler",
    )


@contextlib.contextmanager
def kept_threads() -> Iterator[None]:
    """torch's CPU thread count is process-wide: a run may set its own, the caller gets its back after."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
