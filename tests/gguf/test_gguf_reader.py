"""The GGUF reader on valid files: values, shapes and bytes agree with gguf-py's reader and writer."""
from __future__ import annotations

import gc
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from gguf_fixtures import TOKENS, tiny_llama_spec
from gguf_bytes import build
from edgegen import ModelFormatError, ModelNotFoundError
from edgegen.gguf import GGUFFile, ggml_type_info


def reference_metadata(reader: gguf.GGUFReader) -> dict:
    out = {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF."):
            continue  # the reader's pseudo-fields for the header
        out[name] = fld.contents()
    return out


def assert_same_as_gguf_py(path: Path) -> None:
    reader = gguf.GGUFReader(path)
    with GGUFFile(path) as f:
        ref = reference_metadata(reader)
        assert list(f.metadata) == list(ref)
        for key, want in ref.items():
            got = f.metadata[key]
            if isinstance(got, np.ndarray):
                np.testing.assert_array_equal(got, np.asarray(want, dtype=got.dtype), err_msg=key)
            elif isinstance(want, float):
                assert got == pytest.approx(want, rel=0, abs=0), key
            else:
                assert got == want, key
        assert list(f.tensors) == [t.name for t in reader.tensors]
        for t in reader.tensors:
            info = f.tensors[t.name]
            assert info.shape == tuple(int(d) for d in t.shape), t.name
            assert info.type_id == int(t.tensor_type) and info.type_name == t.tensor_type.name
            assert info.offset == t.data_offset and info.nbytes == t.n_bytes, t.name
            assert info.n_elements == t.n_elements
        for t in reader.tensors[:3] + reader.tensors[-3:]:
            assert f.tensor_data(t.name).tobytes() == t.data.tobytes(), t.name


def test_builder_matches_gguf_writer(tmp_path: Path) -> None:
    # Our byte writer (used for the malformed files) must agree with the reference writer.
    spec = tiny_llama_spec()
    ref = tmp_path / "ref.gguf"
    w = gguf.GGUFWriter(ref, arch="llama")
    w.kv_data[0].clear()  # drop the automatic general.architecture: re-added in spec order below
    for kv in spec.kvs:
        if kv.vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(kv.key, kv.v, kv.vtype, sub_type=kv.elem_type)
        else:
            w.add_key_value(kv.key, kv.v, kv.vtype)
    for t in spec.tensors:
        arr = np.frombuffer(t.data, dtype=np.float32).reshape(tuple(reversed(t.shape)))
        w.add_tensor(t.name, arr)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    assert build(spec) == ref.read_bytes()


def test_tiny_llama_values(write) -> None:
    path = write(tiny_llama_spec())
    with GGUFFile(path) as f:
        assert f.version == 3 and f.alignment == 32 and f.architecture == "llama"
        md = f.metadata
        assert md["llama.block_count"] == 2 and isinstance(md["llama.block_count"], int)
        assert md["general.flag"] is True and md["general.i64"] == -(2**40)
        assert md["llama.rope.freq_base"] == 10000.0
        assert md["tokenizer.ggml.tokens"] == TOKENS
        scores = md["tokenizer.ggml.scores"]
        assert scores.dtype == np.float32 and scores.tolist() == [0.0, 0.0, 0.0, -1.0, -2.0, -0.5]
        assert md["tokenizer.ggml.token_type"].dtype == np.int32
        assert f.metadata_types["tokenizer.ggml.tokens"] == "array"
        q = f.tensors["blk.1.attn_q.weight"]
        assert q.shape == (8, 8) and q.type_name == "F32" and q.nbytes == 256 and q.offset % 32 == 0
        want = (np.arange(64, dtype=np.float32) + 101).tobytes()
        assert f.tensor_data("blk.1.attn_q.weight").tobytes() == want
        with pytest.raises(KeyError):
            f.tensor_data("nope")
    assert_same_as_gguf_py(path)


def test_views_are_zero_copy_read_only_and_outlive_close(write) -> None:
    f = GGUFFile(write(tiny_llama_spec()))
    a = f.tensor_data("token_embd.weight")
    b = f.tensor_data("token_embd.weight")
    whole = np.frombuffer(f.native, dtype=np.uint8)
    assert np.shares_memory(a, whole) and np.shares_memory(a, b)  # views of one mapping, no copies
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1
    with pytest.raises(ValueError):
        a.flags.writeable = True
    f.close()
    del whole, b
    gc.collect()
    assert f.closed
    with pytest.raises(ValueError, match="closed"):
        f.tensor_data("token_embd.weight")
    # The mapping is alive as long as a view is: reading it must neither crash nor change.
    assert a.view(np.float32)[:4].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_version_2_is_read(write) -> None:
    spec = tiny_llama_spec()
    spec.version = 2
    with GGUFFile(write(spec)) as f:
        assert f.version == 2 and len(f.tensors) == 20


def test_file_without_tensors(write) -> None:
    spec = tiny_llama_spec()
    spec.tensors = []
    with GGUFFile(write(spec)) as f:
        assert f.tensors == {} and f.metadata["llama.block_count"] == 2


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        GGUFFile(tmp_path / "absent.gguf")
    with pytest.raises(ModelFormatError, match="not a regular file"):
        GGUFFile(tmp_path)


def test_type_table_matches_gguf_py() -> None:
    for qt, (block, size) in gguf.GGML_QUANT_SIZES.items():
        info = ggml_type_info(int(qt))
        if qt == QT.Q8_1:
            assert info == ("Q8_1", 32, 36)  # ggml's block_q8_1 is two halves + 32 bytes; gguf-py says 40
            continue
        assert info == (qt.name, block, size), qt.name
    assert ggml_type_info(4) is None and ggml_type_info(1000) is None and ggml_type_info(-1) is None


def test_smollm2_matches_gguf_py(smollm2_path: Path) -> None:
    assert_same_as_gguf_py(smollm2_path)
    with GGUFFile(smollm2_path) as f:
        assert f.architecture == "llama" and len(f.tensors) == 272
        assert f.tensors["token_embd.weight"].shape == (576, 49152)
        assert f.metadata["tokenizer.ggml.pre"] == "smollm"
