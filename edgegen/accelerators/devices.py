"""What can compute here: the CPU's kernel set and, when onnxruntime-qnn is installed, Qualcomm's
QNN HTP (Hexagon NPU) backend — real on a Snapdragon/QCS board, a functional simulator on x86-64.

Discovery never fails: a missing or broken provider is listed with the reason it is unusable.
"""
from __future__ import annotations

import os
import platform
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

QNN_PACKAGE = "onnxruntime-qnn"
QNN_PIN = "onnxruntime-qnn==2.7.0"  # pinned as in pyproject's [qnn] extra
QNN_EP = "QNNExecutionProvider"

# Hexagon HTP architecture of the SoCs edgegen targets (Qualcomm's QNN SoC tables). Looked up by
# the name Linux reports in /sys/devices/soc0/machine; EDGEGEN_QNN_HTP_ARCH overrides.
HTP_ARCH_BY_SOC = {
    "QCS6490": 68, "QCM6490": 68, "SC7280": 68,  # Radxa Dragon Q6A, Rubik Pi 3, RB3 Gen 2
    "SM8350": 68, "QCS8250": 66, "SM8450": 69, "SM8550": 73, "QCS8550": 73, "SM8650": 75, "SM8750": 79,
    "SC8280XP": 68, "X1E80100": 73,
}
DEFAULT_SIM_ARCH = 68  # what the x86 simulator compiles for: the QCS6490's Hexagon v68


@dataclass
class Device:
    name: str                    # "cpu" | "qnn-htp"
    usable: bool
    detail: str                  # ISA, or "HTP v68 (simulator)", or why it is unusable
    simulated: bool = False
    arch: Optional[int] = None   # HTP architecture version
    info: dict[str, Any] = field(default_factory=dict)


def cpu_device() -> Device:
    from .. import _native

    isa = _native.active_isa()
    return Device("cpu", True, f"{platform.machine()} {isa} ({_native.physical_cores()} cores)", info={"isa": isa})


_REGISTER_LOCK = threading.Lock()
_REGISTERED: Optional[str] = None  # the library path registered with onnxruntime in this process


def qnn_module() -> Any:
    """onnxruntime + onnxruntime_qnn with the QNN plugin registered (once per process).
    Raises AcceleratorError naming the package when it is missing or its library does not load."""
    global _REGISTERED
    from ..errors import AcceleratorError

    try:
        import onnxruntime as ort
        import onnxruntime_qnn as oq
    except ImportError as exc:
        raise AcceleratorError(
            f"qnn-htp needs the {QNN_PACKAGE} package: pip install 'edgegen[qnn]' (or {QNN_PIN}) ({exc})") from None
    with _REGISTER_LOCK:
        if _REGISTERED is None:
            lib = oq.get_library_path()
            try:
                ort.register_execution_provider_library(QNN_EP, lib)
            except Exception as exc:
                if "already registered" not in str(exc):
                    raise AcceleratorError(
                        f"{QNN_PACKAGE} is installed but its provider library {lib} does not load "
                        f"(reinstall {QNN_PIN}, matching onnxruntime {ort.__version__}): {exc}") from None
            _REGISTERED = lib
    return ort, oq


def qnn_ep_devices() -> list[Any]:
    ort, _ = qnn_module()
    return [d for d in ort.get_ep_devices() if d.ep_name == QNN_EP]


def _soc_name() -> Optional[str]:
    try:
        with open("/sys/devices/soc0/machine", encoding="ascii", errors="replace") as f:
            return f.read().strip() or None
    except OSError:
        return None


def qnn_htp_device() -> Device:
    from ..errors import AcceleratorError

    try:
        ort, oq = qnn_module()
        devices = qnn_ep_devices()
    except AcceleratorError as exc:
        return Device("qnn-htp", False, str(exc))
    if not devices:
        return Device("qnn-htp", False, f"{QNN_PACKAGE} {oq.__version__} registered no device")
    versions = {"onnxruntime": ort.__version__, QNN_PACKAGE: oq.__version__,
                "qnn_sdk": getattr(oq.build_and_package_info, "qnn_version", "?")}
    npu = [d for d in devices if d.device.type == ort.OrtHardwareDeviceType.NPU]
    machine = platform.machine().lower()
    env_arch = os.environ.get("EDGEGEN_QNN_HTP_ARCH")
    if npu:  # a real Hexagon NPU (Snapdragon/QCS Linux or Windows on ARM)
        soc = _soc_name()
        arch = int(env_arch) if env_arch else HTP_ARCH_BY_SOC.get((soc or "").upper())
        detail = f"HTP v{arch}" if arch else "HTP (architecture unknown: set EDGEGEN_QNN_HTP_ARCH)"
        return Device("qnn-htp", True, f"{detail} on {soc or 'this SoC'}", False, arch, versions)
    if machine in ("x86_64", "amd64"):  # libQnnHtp.so on x86-64 is Qualcomm's functional simulator
        arch = int(env_arch) if env_arch else DEFAULT_SIM_ARCH
        return Device("qnn-htp", True, f"HTP v{arch} (x86-64 simulator: correct results, not device speed)",
                      True, arch, versions)
    return Device("qnn-htp", False, f"{QNN_PACKAGE} found no Hexagon NPU on this {platform.machine()} machine")


def list_devices() -> list[Device]:
    """Every compute device edgegen knows about, usable or not (with the reason)."""
    return [cpu_device(), qnn_htp_device()]
