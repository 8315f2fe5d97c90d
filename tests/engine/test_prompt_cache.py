"""Prompt cache files (edgegen.prompt_cache): a saved prefix loads back to the same KV bit for bit,
and every file it must not trust is refused with a typed error and computed again."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import edgegen
from edgegen import prompt_cache

from .conftest import smollm2_path

SYSTEM = [{"role": "system", "content": "You are the assistant of a bakery kiosk. Prices: bread 2 euros, "
                                        "croissant 1.20 euros. Answer in one sentence."}]
CHAT = SYSTEM + [{"role": "user", "content": "How much is a croissant?"}]


def _load(path=None, **kw):
    return edgegen.load(path or smollm2_path(), backend="native", n_ctx=256, n_threads=2, **kw)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    llm = _load()
    path = tmp_path_factory.mktemp("pcache") / "system.egkv"
    n = llm.save_prefix(SYSTEM, path)
    yield llm, path, n
    llm.backend.close()


def _logits_after_prefix(llm, prefix_ids, ids):
    """Logits of ids[len(prefix):] evaluated on top of the cached prefix sequence."""
    be = llm.backend
    sched = be.scheduler
    n = len(prefix_ids)

    def run(slot):
        src = sched.holder_of(prefix_ids)
        assert src is not None and src in sched.saved_sequences
        be.kv_cache.seq_fork(src, slot, n)
        try:
            return be._model.eval(be.kv_cache, slot, list(ids[n:]), all_logits=True)
        finally:
            be.kv_cache.seq_clear(slot)

    return sched.run_exclusive(run)


def test_round_trip_restores_identical_logits_and_answers(saved) -> None:
    llm, path, n = saved
    fresh = _load()  # a new process would do the same: nothing is shared with `llm`
    try:
        assert fresh.load_prefix(path) == n
        prefix = prompt_cache.prefix_ids(fresh, SYSTEM)
        ids = fresh.prepare_chat(CHAT).ids
        assert list(ids[:n]) == prefix
        got = _logits_after_prefix(fresh, prefix, ids)
        ref = llm.backend.eval_logits(list(ids))[n:]
        assert np.array_equal(got, ref)
        reused = fresh.backend.stats["prompt_tokens_reused"]
        assert fresh.chat(CHAT, max_tokens=10, temperature=0.0).text == llm.chat(CHAT, max_tokens=10, temperature=0.0).text
        assert fresh.backend.stats["prompt_tokens_reused"] - reused >= n
    finally:
        fresh.backend.close()


def _rewrite_header(data: bytes, **changes) -> bytes:
    """A validly checksummed file whose header says something else."""
    fixed = len(prompt_cache.MAGIC) + 4
    (n_head,) = struct.unpack("<I", data[len(prompt_cache.MAGIC):fixed])
    header = json.loads(data[fixed:fixed + n_head])
    payload = data[fixed + n_head:-32]
    header.update(changes)
    header.pop("payload_bytes")
    header.pop("format")
    return prompt_cache.encode(header, payload)


def test_bad_files_are_refused_and_the_prefix_is_computed_again(saved, tmp_path, requantized) -> None:
    llm, path, n = saved
    data = path.read_bytes()
    cases = {
        "truncated": data[:len(data) // 2],
        "corrupt": data[:200] + bytes([data[200] ^ 1]) + data[201:],
        "engine": _rewrite_header(data, engine="edgegen 0.0.1 kv-format 1"),
    }
    for reason, bad in cases.items():
        p = tmp_path / f"{reason}.egkv"
        p.write_bytes(bad)
        with pytest.raises(edgegen.PromptCacheError) as err:
            llm.load_prefix(p)
        assert err.value.reason == reason
        assert llm.ensure_prefix(SYSTEM, p) == "computed"  # recomputed and rewritten
        assert llm.ensure_prefix(SYSTEM, p) == "loaded"
    # a cache made from the Q4_0 copy of the same model is refused for the Q4_1 file
    q4_0 = _load(requantized["q4_0"])
    try:
        other = tmp_path / "q4_0.egkv"
        q4_0.save_prefix(SYSTEM, other)
        with pytest.raises(edgegen.PromptCacheError) as err:
            llm.load_prefix(other)
        assert err.value.reason == "model"
    finally:
        q4_0.backend.close()
    # the same model with a q8_0 cache cannot use f16 rows
    q8 = _load(kv_type="q8_0")
    try:
        with pytest.raises(edgegen.PromptCacheError) as err:
            q8.load_prefix(path)
        assert err.value.reason == "kv"
    finally:
        q8.backend.close()


def test_writes_are_atomic(saved, tmp_path, monkeypatch) -> None:
    llm, path, _ = saved
    target = tmp_path / "keep.egkv"
    target.write_bytes(path.read_bytes())

    def fail(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(prompt_cache.os, "fsync", fail)
    with pytest.raises(edgegen.PromptCacheError, match="disk full"):
        llm.save_prefix(SYSTEM, target)
    assert target.read_bytes() == path.read_bytes()  # the old file is intact, no temporary left
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".keep")] == []
