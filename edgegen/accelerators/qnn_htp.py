"""Prompt processing on Qualcomm's Hexagon NPU (QNN HTP) through onnxruntime-qnn.

The engine's offload backend (native/offload_backend.h) hands this provider the batched matrix
products of prompt processing (>= min_batch tokens; decode stays on the CPU); everything else —
norms, rope, attention, the KV cache, the output head — stays on the CPU backend.

Per layer the products that share an input are one graph: q/k/v, the attention output, gate/up
and down, four calls a layer. Each graph is built once per model with the `onnx` package as a QDQ
model that the QNN execution provider compiles for the HTP, and stored as an EP-context file (the
QNN context binary inside an ONNX wrapper) in the cache next to the model (cache.py).

Quantization (the choice, and why): weights int8, symmetric, one scale per output channel, plus
an int8 residual along the reduction axis; activations (inputs and results) uint16 with one
static range per tensor ("A16W8"). docs/accelerators.md has the measurements.
  * The HTP's fast path is integer; float16 runs there too but at a fraction of the int8 rate.
  * Per-channel int8 weights keep every row's own scale, but re-expressing Q4_1 blocks that way
    costs ~0.3-1.3% per product; the residual (the int8 part's rounding error on the grid
    scale/16, fed x/16: _int8_weight) makes the weights ~12-bit in the same single product.
    Block-quantized weights would fit the GGUF better, but the HTP takes them from v73 on only.
  * LLM activations have outlier channels (hundreds of times the median after RMS norm and in the
    SwiGLU product); one 8-bit range per tensor would flush the small channels to zero. 16-bit
    activations with a static range keep them (measured on a 16x576x1536 product on the HTP
    simulator: 0.75% relative error with A16W8 vs 1.6% with A8W8). It is Qualcomm's own recipe
    for LLMs on the HTP (its AI Hub models are w4a16/w8a16).
  * The HTP needs the activation ranges ahead of time: a calibration run of the CPU engine over a
    documented text set (calibration.txt, each paragraph its own sequence) records each product's
    input and output ranges (widened by RANGE_MARGIN), stored with the cache. A call whose input
    falls outside its range, or whose output saturates, is left to the CPU (the range guard in
    run()): a clipped value can be arbitrarily wrong.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import AcceleratorError
from .cache import ContextCache, cache_root, file_sha256
from .devices import qnn_ep_devices, qnn_module

log = logging.getLogger("edgegen.accelerators")

SCHEME = "w8-per-channel-sym+a16-per-tensor-asym/2"
# The products of a layer, grouped as the forward pass calls them (one input each).
_GROUPS = (("attn_q", "attn_k", "attn_v"), ("attn_output",), ("ffn_gate", "ffn_up"), ("ffn_down",))
_WEIGHT = re.compile(r"^blk\.(\d+)\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$")
CALIBRATION_FILE = Path(__file__).with_name("calibration.txt")
CALIBRATION_TOKENS = 2048  # at most, over all the calibration sequences
RANGE_MARGIN = 1.25  # calibration ranges widened by this factor (prompts outside the text set)
# Output channels whose calibrated magnitude exceeds this multiple of the median channel's are
# scaled down inside the graph (their weight rows divided, the results multiplied back on the CPU):
# LLMs' "massive activations" (SmolLM2's last FFN writes values of -5700 into a few channels for
# the first token, where the rest stay within tens) would otherwise set the one 16-bit output
# range of the whole tensor, and the HTP's requantized products then lose the ordinary channels
# (measured on the simulator: 6.3% relative error on that product, 1.0% with the outliers scaled).
OUTLIER_FACTOR = 4.0
GRAPH_BATCH = 64  # = the engine's chunk (Model::kMaxBatch): one static shape per graph
A_MAX = 65535


@dataclass(frozen=True)
class QnnOptions:
    htp_arch: int = 68
    min_batch: int = 16  # batches below this stay on the CPU (decode is one token)
    layers: Optional[tuple[int, ...]] = None  # the layers to offload (None: all)
    performance_mode: str = "burst"  # run-time only, not part of the cache key
    # weights as int8 + int8 residual along the reduction axis, the residual's input scaled by
    # 1/weight_residual (0: plain int8 weights); see _int8_weight
    weight_residual: int = 16

    def key_fields(self) -> dict[str, Any]:
        return {"htp_arch": self.htp_arch, "layers": list(self.layers) if self.layers is not None else None,
                "batch": GRAPH_BATCH, "scheme": SCHEME, "weight_residual": self.weight_residual, "range_margin": RANGE_MARGIN, "outlier_factor": OUTLIER_FACTOR,
                "calibration_tokens": CALIBRATION_TOKENS, "calibration_sha256": file_sha256(str(CALIBRATION_FILE))}


@dataclass
class _Weight:
    name: str
    layer: int
    kind: str
    qtype: str
    rows: int
    cols: int
    data: Any  # memoryview of the mapped rows


class QnnHtpProvider:
    """The MatmulProvider the engine calls (offer / run / observe); see native/offload_backend.h."""

    def __init__(self, options: QnnOptions) -> None:
        self.options = options
        self.weights: list[_Weight] = []
        # calibration, per group: the input's range, and each output's per-channel min and max
        self._x_range: dict[tuple[int, ...], list[float]] = {}
        self._y_ranges: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
        self._row_scales: dict[tuple[int, ...], list[Optional[np.ndarray]]] = {}  # outputs' channel scales
        self._sessions: dict[tuple[int, ...], Any] = {}
        self._pad: dict[int, np.ndarray] = {}
        # per group, what the graph can represent: the input's (lo, hi) and each output's
        # (lo, hi, step) on its 16-bit grid (see run: the range guard)
        self._limits: dict[tuple[int, ...], tuple[tuple[float, float], list[tuple[float, float, float]]]] = {}
        self.run_seconds = 0.0
        self.declined = 0  # calls left to the CPU by the range guard

    # ---- called by the engine ---------------------------------------------------------------
    def offer(self, name: str, qtype: str, rows: int, cols: int, data: memoryview) -> int:
        m = _WEIGHT.match(name)
        if m is None or (self.options.layers is not None and int(m.group(1)) not in self.options.layers):
            return -1  # embeddings, output head, other layers: the CPU's
        self.weights.append(_Weight(name, int(m.group(1)), m.group(2), qtype, rows, cols, data))
        return len(self.weights) - 1

    def observe(self, ids: tuple[int, ...], x: np.ndarray, outs: list[np.ndarray]) -> None:
        old_x = self._x_range.get(ids, [np.inf, -np.inf])
        self._x_range[ids] = [min(old_x[0], float(x.min())), max(old_x[1], float(x.max()))]
        seen = [(y.min(axis=0), y.max(axis=0)) for y in outs]
        old = self._y_ranges.get(ids)
        self._y_ranges[ids] = [(np.minimum(a[0], b[0]), np.maximum(a[1], b[1])) for a, b in zip(old, seen)] if old \
            else [(a.copy(), b.copy()) for a, b in seen]

    def run(self, ids: tuple[int, ...], x: np.ndarray, outs: list[np.ndarray]) -> bool:
        sess = self._sessions.get(ids)
        if sess is None or x.shape[0] > GRAPH_BATCH:
            return False
        (x_lo, x_hi), y_limits = self._limits[ids]
        if float(x.min()) < x_lo or float(x.max()) > x_hi:  # would be clipped: the CPU's call
            self.declined += 1
            return False
        n, k = x.shape
        f = self.options.weight_residual
        width = 2 * k if f else k
        pad = self._pad.setdefault(width, np.zeros((GRAPH_BATCH, width), np.float32))
        pad[:n, :k] = x
        pad[n:] = 0.0
        if f:  # the residual weights' input: x / f (see _int8_weight)
            np.multiply(x, 1.0 / f, out=pad[:n, k:])
        t = time.perf_counter()
        ys = sess.run(None, {"x": pad})
        self.run_seconds += time.perf_counter() - t
        for y, (lo, hi, step) in zip(ys, y_limits):
            if float(y[:n].min()) < lo + step / 2 or float(y[:n].max()) > hi - step / 2:  # saturated
                self.declined += 1
                return False
        for out, y, scale in zip(outs, ys, self._row_scales[ids]):
            if scale is None:
                out[...] = y[:n]
            else:
                np.multiply(y[:n], scale, out=out)
        return True

    # ---- groups, graphs -----------------------------------------------------------------------
    def groups(self) -> list[tuple[int, ...]]:
        """The weight ids of each graph, in layer order: what the forward pass calls together."""
        at = {(w.layer, w.kind): i for i, w in enumerate(self.weights)}
        out = []
        for layer in sorted({w.layer for w in self.weights}):
            for kinds in _GROUPS:
                if all((layer, k) in at for k in kinds):
                    out.append(tuple(at[(layer, k)] for k in kinds))
        return out

    def group_names(self) -> list[list[str]]:
        return [[self.weights[i].name for i in g] for g in self.groups()]

    def _dequantized(self, w: _Weight) -> np.ndarray:
        from .. import _native

        raw = np.frombuffer(w.data, dtype=np.uint8).reshape(w.rows, -1)
        return np.asarray(_native.dequantize(raw, w.qtype), dtype=np.float32).reshape(w.rows, w.cols)

    def _input_range(self, ids: tuple[int, ...]) -> tuple[float, float]:
        lo, hi = self._x_range[ids]
        return lo * RANGE_MARGIN, hi * RANGE_MARGIN

    def _output_range(self, ids: tuple[int, ...], k: int) -> tuple[float, float]:
        """Output k's range inside the graph: outlier channels divided by their scales."""
        y_min, y_max = self._y_ranges[ids][k]
        scale = self._row_scales[ids][k]
        if scale is not None:
            y_min, y_max = y_min / scale, y_max / scale
        return float(y_min.min()) * RANGE_MARGIN, float(y_max.max()) * RANGE_MARGIN

    def _set_limits(self, ids: tuple[int, ...]) -> None:
        """What the group's graph represents, for the range guard in run(): an input outside the
        input's grid, or an output at the end of its grid, means values were clipped."""
        def grid_ends(lo: float, hi: float) -> tuple[float, float, float]:
            scale, zp = _act_grid(lo, hi)
            return (0 - zp) * scale, (A_MAX - zp) * scale, scale

        x_lo, x_hi, _ = grid_ends(*self._input_range(ids))
        self._limits[ids] = ((x_lo, x_hi), [grid_ends(*self._output_range(ids, k)) for k in range(len(ids))])

    def build_graph(self, ids: tuple[int, ...]) -> Any:
        """The QDQ ONNX graph of one group: x (GRAPH_BATCH, cols) -> y_i (GRAPH_BATCH, rows_i)."""
        from onnx import TensorProto, helper, numpy_helper

        if ids not in self._x_range:
            raise AcceleratorError(f"no calibration ranges for {[self.weights[i].name for i in ids]}")
        scales = self._row_scales[ids] = [_outlier_scales(*r) for r in self._y_ranges[ids]]
        self._set_limits(ids)
        cols = self.weights[ids[0]].cols
        inits, nodes, outputs = [], [], []

        def act_q(name: str, lo: float, hi: float) -> tuple[str, str]:
            scale, zp = _act_grid(lo, hi)
            inits.append(numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"))
            inits.append(numpy_helper.from_array(np.array(zp, np.uint16), f"{name}_z"))
            return f"{name}_s", f"{name}_z"

        xs, xz = act_q("x", *self._input_range(ids))
        nodes += [helper.make_node("QuantizeLinear", ["x", xs, xz], ["x_q"]),
                  helper.make_node("DequantizeLinear", ["x_q", xs, xz], ["x_dq"])]

        def int8_weight(name: str, w: np.ndarray) -> str:
            wq, scale = _int8_weight(w, self.options.weight_residual)
            inits.extend([numpy_helper.from_array(np.ascontiguousarray(wq.T), name),
                          numpy_helper.from_array(scale.astype(np.float32), f"{name}_s"),
                          numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{name}_z")])
            nodes.append(helper.make_node("DequantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_dq"], axis=1))
            return f"{name}_dq"

        for k, i in enumerate(ids):
            w = self._dequantized(self.weights[i])  # (rows, cols)
            if scales[k] is not None:  # outlier channels scaled down (run() scales them back)
                w = w / scales[k][:, None]
            ys, yz = act_q(f"y{k}", *self._output_range(ids, k))
            nodes += [helper.make_node("MatMul", ["x_dq", int8_weight(f"w{k}", w)], [f"y{k}_f"]),
                      helper.make_node("QuantizeLinear", [f"y{k}_f", ys, yz], [f"y{k}_q"]),
                      helper.make_node("DequantizeLinear", [f"y{k}_q", ys, yz], [f"y{k}"])]
            outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, [GRAPH_BATCH, w.shape[0]]))
        graph = helper.make_graph(nodes, "edgegen_" + self.weights[ids[0]].name.replace(".", "_"),
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [GRAPH_BATCH, cols * (2 if self.options.weight_residual else 1)])],
                                  outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="edgegen")
        model.ir_version = 10
        return model

    # ---- sessions -----------------------------------------------------------------------------
    def _session_options(self, context_path: Optional[Path] = None) -> Any:
        ort, oq = qnn_module()
        so = ort.SessionOptions()
        so.log_severity_level = 3  # the EP's warnings about Windows-only features are noise here
        so.intra_op_num_threads = 1
        so.add_provider_for_devices(qnn_ep_devices(), {
            "backend_path": oq.get_qnn_htp_path(), "htp_arch": str(self.options.htp_arch),
            "htp_performance_mode": self.options.performance_mode, "offload_graph_io_quantization": "0"})
        # all of a graph on the HTP, or an error: a silent CPU fallback would hide a broken graph
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        if context_path is not None:
            so.add_session_config_entry("ep.context_enable", "1")
            so.add_session_config_entry("ep.context_file_path", str(context_path))
            so.add_session_config_entry("ep.context_embed_mode", "1")
        return so

    def compile_into(self, directory: Path) -> dict[str, Any]:
        """Compiles every group into directory/gNNNN.onnx (EP-context files) plus the ranges."""
        ort, _ = qnn_module()
        graphs = []
        for n, ids in enumerate(self.groups()):
            path = directory / f"g{n:04d}.onnx"
            try:
                ort.InferenceSession(self.build_graph(ids).SerializeToString(), self._session_options(path))
            except Exception as exc:
                raise AcceleratorError(f"the QNN HTP backend could not compile {self.weights[ids[0]].name} "
                                       f"and its group: {exc}") from None
            if not path.is_file():
                raise AcceleratorError(f"onnxruntime-qnn wrote no context file for {path.name}")
            graphs.append({"file": path.name, "weights": [self.weights[i].name for i in ids]})
        arrays = {}
        for n, ids in enumerate(self.groups()):
            arrays[f"g{n:04d}_x"] = np.array(self._x_range[ids])
            for k, (lo, hi) in enumerate(self._y_ranges[ids]):
                arrays[f"g{n:04d}_y{k}_min"], arrays[f"g{n:04d}_y{k}_max"] = lo, hi
                if self._row_scales[ids][k] is not None:
                    arrays[f"g{n:04d}_y{k}_scale"] = self._row_scales[ids][k]
        np.savez(directory / "calibration.npz", **arrays)
        return {"graphs": graphs}

    def load_from(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Opens the cached context files; the manifest must list exactly this model's groups."""
        ort, _ = qnn_module()
        if [g["weights"] for g in manifest["graphs"]] != self.group_names():
            raise ValueError("its graphs are not this model's products")
        sessions, scales, x_range, y_ranges = {}, {}, {}, {}
        with np.load(directory / "calibration.npz") as cal:
            for n, (ids, g) in enumerate(zip(self.groups(), manifest["graphs"])):
                sessions[ids] = ort.InferenceSession(str(directory / g["file"]), self._session_options())
                scales[ids] = [cal[f"g{n:04d}_y{k}_scale"].astype(np.float32) if f"g{n:04d}_y{k}_scale" in cal.files
                               else None for k in range(len(ids))]
                x_range[ids] = [float(v) for v in cal[f"g{n:04d}_x"]]
                y_ranges[ids] = [(cal[f"g{n:04d}_y{k}_min"], cal[f"g{n:04d}_y{k}_max"]) for k in range(len(ids))]
        self._sessions, self._row_scales, self._x_range, self._y_ranges = sessions, scales, x_range, y_ranges
        for ids in self.groups():
            self._set_limits(ids)


def _act_grid(lo: float, hi: float) -> tuple[float, int]:
    """The uint16 grid (scale, zero point) of an activation range; zero is always on it (the
    padding rows)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = (hi - lo) / A_MAX
    return scale, int(np.clip(round(-lo / scale), 0, A_MAX))


def _int8_weight(w: np.ndarray, residual: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 weights (rows, cols) -> (rows, cols) int8 and the rows'
    scales. With residual=f > 0: (rows, 2*cols), the rounding error of the int8 part appended
    along the reduction axis as a second int8 part on the grid scale/f, so that
    [x, x/f] @ [q, r]^T * scale = x @ (q + r/f)^T * scale -- one product, the same per-channel
    scales, the weight error f times smaller, for twice the reduction length."""
    scale = np.maximum(np.abs(w).max(axis=1), 1e-30) / 127.0
    q = np.clip(np.rint(w / scale[:, None]), -127, 127)
    if residual:
        r = np.clip(np.rint((w / scale[:, None] - q) * residual), -127, 127)
        q = np.concatenate([q, r], axis=1)
    return q.astype(np.int8), scale


def _outlier_scales(y_min: np.ndarray, y_max: np.ndarray) -> Optional[np.ndarray]:
    """Per output channel: how far above OUTLIER_FACTOR x the median channel's magnitude it goes
    (>= 1), or None when no channel does."""
    amax = np.maximum(np.abs(y_min), np.abs(y_max)).astype(np.float64)
    cap = OUTLIER_FACTOR * max(float(np.median(amax)), 1e-12)
    scale = np.maximum(amax / cap, 1.0)
    return scale.astype(np.float32) if (scale > 1.0).any() else None


def _calibration_tokens(encode: Any) -> list[list[int]]:
    """The calibration text's paragraphs, each its own sequence: LLMs write their largest
    activations at a sequence's first tokens (the "attention sink"), and how large depends on
    which token comes first, so the ranges need many openings, not one long text."""
    text = CALIBRATION_FILE.read_text(encoding="utf-8")
    seqs, total = [], 0
    for paragraph in re.split(r"\n\s*\n", text):
        ids = list(encode(paragraph.strip("\n")))[:CALIBRATION_TOKENS - total]
        if len(ids) >= 2:
            seqs.append(ids)
            total += len(ids)
    return seqs


def calibrate(model: Any, provider: QnnHtpProvider, sequences: Sequence[Sequence[int]]) -> None:
    """Runs the CPU engine over the calibration sequences (each from an empty cache, in chunks
    of GRAPH_BATCH) with every batched product shown to the provider (its input and output
    ranges). Chunks below the offload threshold are not shown: they are never offloaded."""
    if sequences and isinstance(sequences[0], int):
        sequences = [sequences]  # one sequence
    model.offload_mode = "calibrate"
    try:
        for tokens in sequences:
            cache = model.new_cache(len(tokens) + GRAPH_BATCH)
            for i in range(0, len(tokens), GRAPH_BATCH):
                model.eval(cache, 0, list(tokens[i:i + GRAPH_BATCH]))
    finally:
        model.offload_mode = "off"
    missing = [provider.weights[g[0]].name for g in provider.groups() if g not in provider._x_range]
    if missing:
        raise AcceleratorError(f"calibration did not reach {missing[:3]} (too few calibration tokens?)")


def prepare(model: Any, provider: QnnHtpProvider, model_path: str, encode: Any) -> dict[str, Any]:
    """Loads the model's compiled graphs from the cache, building them first when there is no
    valid entry (calibration + conversion + compilation, under the cache's lock). Returns facts
    for logs and tests: the cache directory, whether it was built now, seconds taken."""
    ort, oq = qnn_module()
    sha = file_sha256(model_path)
    key_fields = {"model_sha256": sha, "onnxruntime": ort.__version__, "onnxruntime_qnn": oq.__version__,
                  "qnn_sdk": getattr(oq.build_and_package_info, "qnn_version", "?"), **provider.options.key_fields()}
    cache = ContextCache(cache_root(model_path, sha), key_fields)
    t0 = time.perf_counter()
    built = False
    with cache.lock():
        manifest = cache.validate()
        if manifest is not None:
            try:
                provider.load_from(cache.dir, manifest)
            except Exception as exc:  # a context binary the backend refuses: rebuild it
                log.warning("compiled-graph cache %s refused (%s); rebuilding it", cache.dir, exc)
                manifest = None
        if manifest is None:
            log.info("preparing %s for the QNN HTP (calibration + compilation, once per model)", model_path)
            calibrate(model, provider, _calibration_tokens(encode))
            manifest = cache.publish(provider.compile_into)
            provider.load_from(cache.dir, manifest)
            built = True
    model.offload_mode = "on"
    return {"cache_dir": str(cache.dir), "built": built, "seconds": time.perf_counter() - t0,
            "graphs": len(manifest["graphs"]), "options": asdict(provider.options)}
