"""Accelerators: where the engine's heavy products run (docs/accelerators.md).

`accelerator="cpu"` is the CPU backend alone. `"qnn-htp"` offloads the batched products of prompt
processing to Qualcomm's Hexagon NPU through onnxruntime-qnn (qnn_htp.py); a missing or broken
provider is an AcceleratorError naming the package. `"auto"` takes the NPU only when a real one is
present (never the x86 simulator) and otherwise, or when preparing it fails, stays on the CPU and
logs why.
"""
from __future__ import annotations

import logging
import platform
from typing import Any, Callable, Optional

from ..errors import AcceleratorError
from .devices import Device, list_devices, qnn_htp_device

log = logging.getLogger("edgegen.accelerators")

ACCELERATORS = ("auto", "cpu", "qnn-htp")

__all__ = ["ACCELERATORS", "Device", "list_devices", "open_model", "check_accelerator"]


def check_accelerator(accelerator: str) -> str:
    if accelerator not in ACCELERATORS:
        raise AcceleratorError(f"unknown accelerator {accelerator!r}; choose from {', '.join(ACCELERATORS)}")
    return accelerator


def _real_npu_possible() -> bool:
    # onnxruntime-qnn drives a Hexagon NPU only on ARM64 (Linux/Android/Windows on Snapdragon);
    # elsewhere its HTP library is the simulator, so `auto` need not even import it.
    return platform.machine().lower() in ("aarch64", "arm64")


def open_model(gguf_native: Any, n_threads: int, accelerator: str, *, model_path: str,
               encode: Callable[[str], list[int]], options: Optional[dict[str, Any]] = None) -> tuple[Any, dict[str, Any]]:
    """The engine's Model for `accelerator` and a description of what was chosen (and why)."""
    from .. import _native

    check_accelerator(accelerator)
    if accelerator == "cpu" or (accelerator == "auto" and not _real_npu_possible()):
        return _native.Model(gguf_native, n_threads), {"accelerator": "cpu"}
    device = qnn_htp_device()
    if accelerator == "auto" and (not device.usable or device.simulated):
        log.info("accelerator auto: using the CPU (qnn-htp: %s)", device.detail)
        return _native.Model(gguf_native, n_threads), {"accelerator": "cpu", "reason": device.detail}
    if not device.usable:
        raise AcceleratorError(device.detail)
    try:
        return _open_qnn(gguf_native, n_threads, device, model_path, encode, options or {})
    except AcceleratorError as exc:
        if accelerator != "auto":
            raise
        log.warning("accelerator auto: qnn-htp could not prepare this model, using the CPU: %s", exc)
        return _native.Model(gguf_native, n_threads), {"accelerator": "cpu", "reason": str(exc)}


def _open_qnn(gguf_native: Any, n_threads: int, device: Device, model_path: str, encode: Callable[[str], list[int]],
              options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from .. import _native
    from .qnn_htp import QnnHtpProvider, QnnOptions, prepare

    unknown = set(options) - {"htp_arch", "min_batch", "layers", "performance_mode", "weight_residual"}
    if unknown:
        raise AcceleratorError(f"unknown qnn-htp options {sorted(unknown)}")
    opts = dict(options)
    opts.setdefault("htp_arch", device.arch or 68)
    if opts.get("layers") is not None:
        opts["layers"] = tuple(int(i) for i in opts["layers"])
    qopts = QnnOptions(**opts)
    provider = QnnHtpProvider(qopts)
    model = _native.Model(gguf_native, n_threads, compute="offload", provider=provider, min_batch=qopts.min_batch)
    info = prepare(model, provider, model_path, encode)
    info.update(accelerator="qnn-htp", device=device.detail, simulated=device.simulated)
    model_info = dict(info)
    return model, model_info
