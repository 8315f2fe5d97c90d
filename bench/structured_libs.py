"""llguidance against xgrammar on edgegen's own tokenizers: SmolLM2 (byte-level BPE) and Gemma 3
(SentencePiece, 262k tokens). The measurements behind the library choice in docs/structured.md.

    python bench/structured_libs.py [--runs 5]

Per tokenizer and library: building the vocabulary table the library needs, compiling a nested
JSON schema and a GBNF grammar (first use; each library's own compile cache off or cleared),
and the token-mask computation per step (median and max over the tokens of a reference reply,
replayed --runs times). Both libraries must allow every token of the reference reply; the share
of steps where their masks differ is printed too (they may differ where one treats a token
sequence as non-canonical).

xgrammar's Python package imports torch, transformers and triton at import time, even for its CPU
matcher (which takes any DLPack array, numpy's included). So that this comparison does not need
several GB of wheels, the script puts tiny import stand-ins for torch and transformers on sys.path
when they are not installed; nothing of them runs on the measured path.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from structured import SCHEMA  # noqa: E402  (the same nested robot-command schema as the decode bench)

REPLY = ('{"action": "move", "target": {"joint": "elbow", "pose": {"x": 0.2, "y": 0.1, "z": 0.4}}, '
         '"speed": 10, "tags": ["test", "slow"]}')
GBNF = 'root ::= "turn " dir " " num " degrees"\ndir ::= "left" | "right"\nnum ::= [0-9] | [1-9] [0-9]'
GBNF_REPLY = "turn left 30 degrees"

_TORCH_STUB = '''import numpy as _np
int8, int16, int32, int64, uint8 = _np.int8, _np.int16, _np.int32, _np.int64, _np.uint8
float16, float32, float64, bool = _np.float16, _np.float32, _np.float64, _np.bool_
bfloat16 = object()
half, double, float, int, long, short = float16, float64, float32, int32, int64, int16
dtype = type
class Tensor: pass
LongTensor = FloatTensor = Tensor
class device:
    def __init__(self, *a, **k): pass
def tensor(v, dtype=None): return _np.array(v, dtype=dtype)
def full(shape, v, dtype=None): return _np.full(shape, v, dtype=dtype)
def from_dlpack(x): return _np.from_dlpack(x)
def compiled_with_cxx11_abi(): return True
class _NS: pass
cuda = _NS(); cuda.is_available = lambda: False
utils = _NS(); version = _NS(); version.cuda = None; version.hip = None
__version__ = "0.0"
'''
_TRANSFORMERS_STUB = '''class PreTrainedTokenizerBase: pass
class PreTrainedTokenizerFast(PreTrainedTokenizerBase): pass
class LogitsProcessor: pass
'''


def import_xgrammar():
    import importlib.util

    missing = {"torch": _TORCH_STUB, "transformers": _TRANSFORMERS_STUB}
    stubs = Path(tempfile.mkdtemp(prefix="xgr-stubs-"))
    for name, text in missing.items():
        if importlib.util.find_spec(name) is None:
            (stubs / name).mkdir()
            (stubs / name / "__init__.py").write_text(text)
    sys.path.insert(0, str(stubs))
    import xgrammar

    return xgrammar


def vocab(be):
    n = be.n_vocab
    raw = [be.token_bytes(i, special=True) for i in range(n)]
    control = [bool(raw[i]) and not be.token_bytes(i) for i in range(n)]
    eog = [i for i in range(n) if be.is_eog(i)]
    return raw, control, eog


def bits(words, n):
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little")[:n].astype(bool)


def measure(name, be, xg, runs):
    from edgegen.structured import Constraint
    from edgegen.structured import engine

    raw, control, eog = vocab(be)
    n = be.n_vocab
    words = (n + 31) // 32
    rows = []
    # -- vocabulary tables
    t = time.perf_counter()
    gtok = engine.GrammarTokenizer(be)
    ll_vocab = time.perf_counter() - t
    t = time.perf_counter()
    info = xg.TokenizerInfo([b"" if c else r for r, c in zip(raw, control)], xg.VocabType.RAW,
                            vocab_size=n, stop_token_ids=eog)
    xg_vocab = time.perf_counter() - t
    rows.append((name, "vocabulary table (s)", f"{ll_vocab:.2f}", f"{xg_vocab:.2f}"))
    for what, constraint, text in (("JSON schema", Constraint.json_schema(SCHEMA), REPLY),
                                   ("GBNF grammar", Constraint.grammar(GBNF), GBNF_REPLY)):
        ids = be.tokenize(text, False, False)
        # -- compile (first use)
        engine.compile_cache.clear()
        t = time.perf_counter()
        compiled = engine.compile_constraint(gtok, constraint)
        ll_compile = time.perf_counter() - t
        compiler = xg.GrammarCompiler(info, max_threads=2, cache_enabled=False)
        t = time.perf_counter()
        if constraint.kind == "json_schema":
            xcompiled = compiler.compile_json_schema(constraint.source, any_whitespace=False,
                                                     separators=(", ", ": "))
        else:
            xcompiled = compiler.compile_grammar(GBNF)
        xg_compile = time.perf_counter() - t
        rows.append((name, f"{what}: compile ms", f"{ll_compile * 1e3:.1f}", f"{xg_compile * 1e3:.1f}"))
        # -- masks along the reference reply
        ll_t, xg_t, differ = [], [], 0
        for _ in range(runs):
            m = compiled.matcher()
            xm = xg.GrammarMatcher(xcompiled)
            xbuf = np.full((1, words), -1, np.int32)
            for tok in ids:
                t = time.perf_counter()
                a = m.next_mask()
                ll_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                xm.fill_next_token_bitmask(xbuf)
                xg_t.append(time.perf_counter() - t)
                la, xa = bits(a, n), bits(xbuf[0], n)
                assert la[tok] and xa[tok], (name, what, tok)
                differ += int((la != xa).any())
                m.consume(tok)
                assert xm.accept_token(tok)
        rows.append((name, f"{what}: mask us/step median (max)",
                     f"{statistics.median(ll_t) * 1e6:.0f} ({max(ll_t) * 1e6:.0f})",
                     f"{statistics.median(xg_t) * 1e6:.0f} ({max(xg_t) * 1e6:.0f})"))
        rows.append((name, f"{what}: steps where the masks differ", f"{differ}/{len(ll_t)}", ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import llguidance

    import edgegen

    xg = import_xgrammar()
    print(f"# llguidance {llguidance.__version__ if hasattr(llguidance, '__version__') else '?'}, "
          f"xgrammar {xg.__version__ if hasattr(xg, '__version__') else '?'}")
    print("| tokenizer | measure | llguidance | xgrammar |")
    print("|---|---|---:|---:|")
    for model in ("smollm2", "gemma3-270m"):
        llm = edgegen.load(model, backend="native", n_ctx=256, n_threads=1)
        for row in measure(model, llm.backend, xg, args.runs):
            print("| " + " | ".join(row) + " |")
        llm.backend.close()


if __name__ == "__main__":
    main()
