"""Does the QNN HTP (simulator on x86-64) run Piper's graph? Loads the packaged voice with
onnxruntime-qnn's provider, reports where onnxruntime placed the nodes and whether a synthesis runs
and matches the CPU's. Node placement is in onnxruntime's verbose log:

  python bench/piper_htp.py 2>&1 | grep -E "^(result|load)|Number of nodes"

Simulator time is not device time; nothing here is a speed figure.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import onnxruntime as ort

    from edgegen.audio.voice import load_voice

    ort.set_default_logger_severity(0)  # "Node placements" (stderr)
    text = "The quick brown fox jumps over the lazy dog."
    t = time.perf_counter()
    voice = load_voice(None, providers=[("QNNExecutionProvider", {"htp_arch": "68"})])
    print(f"load {time.perf_counter() - t:.1f}s providers={voice.session.get_providers()}", flush=True)
    ort.set_default_logger_severity(3)
    result: dict = {"session": "built", "providers": voice.session.get_providers()}
    try:
        audio = np.asarray(voice.synthesize(text).samples, np.float32)
        ref = np.asarray(load_voice(None, parallel_units=False).synthesize(text).samples, np.float32)
        n = min(len(audio), len(ref))
        result.update(run="ok", samples=len(audio), cpu_samples=len(ref),
                      correlation=float(np.corrcoef(audio[:n], ref[:n])[0, 1]))
    except Exception as exc:  # what the simulator says is the measurement
        result.update(run="failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
    print("result " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
