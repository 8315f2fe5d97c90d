"""Prompt-cache files (edgegen.prompt_cache, KVCache::seq_import in native/kv_cache_io.cpp) loaded
with LLM.load_prefix into a tiny native Gemma 3 (a global and a sliding-window layer group, so both
KV table kinds are fed), on arbitrary bytes.

A file's sha256 trailer is a checksum, not a signature: anyone can write a file that passes it. So
besides raw bytes (mode 0: the file as given), the target writes files whose checksum is right
around fuzzed parts: mode 1, this model's expected header with fuzzed token ids and a fuzzed KV
payload (what reaches the native reader); mode 2, a fuzzed header text with a fuzzed payload;
mode 3, a valid file with one fuzzed byte flipped (the checksum must catch it).

Contract: load_prefix returns the number of token ids, or raises PromptCacheError (a typed error
with a reason; MemoryBudgetError when the cache is full); a loaded prefix is used by a generation
that starts with it (no crash, a token inside the vocabulary), and every refusal leaves the
server's cache as it was (no KV block held by nobody).
"""
from __future__ import annotations

import hashlib
import json
import struct
import tempfile
from pathlib import Path

from edgegen import prompt_cache
from edgegen.errors import MemoryBudgetError, PromptCacheError

_dir = Path(tempfile.mkdtemp(prefix="edgegen-fuzz-prompt-cache-"))
llm = None
expected: dict = {}
valid_file = b""


def model_config():
    from tests.engine.tiny_models import TinyConfig

    return TinyConfig("gemma3", "F32", 8, 2, 32, n_layer=6, n_embd=256, n_ff=256, tied=True, sliding_window=4)


def setup() -> None:
    global llm, expected, valid_file
    import edgegen
    from tests.engine.tiny_models import write_tiny_gguf

    path = write_tiny_gguf(model_config(), _dir / "model.gguf")
    llm = edgegen.load(str(path), backend="native", n_ctx=64, n_threads=1)
    expected = prompt_cache.expected_header(llm, _dir / "x.egkv")
    llm.save_prefix("one two three four five six seven", _dir / "valid.egkv")
    valid_file = (_dir / "valid.egkv").read_bytes()


def _file(head: bytes, payload: bytes) -> bytes:
    """A file with a correct checksum around any header text and payload."""
    body = prompt_cache.MAGIC + struct.pack("<I", len(head)) + head + payload
    return body + hashlib.sha256(body).digest()


def _kv_payload(spec: bytes, fill: bytes) -> tuple[list[int], bytes]:
    """(token ids, KV payload) shaped like KVCache::seq_export for this cache's layout from
    `spec` = u8 flags, u16 length, u16 window start per group, i8 size error, u16 token ids; block
    data cycled from `fill`. Flags: 1 token count = length, 2 window starts made plausible."""
    lay = llm.backend.kv_cache.layout
    B, groups = lay["block_tokens"], lay["groups"]
    spec = spec.ljust(4 + 2 * len(groups), b"\0")
    flags, length = spec[0], struct.unpack_from("<H", spec, 1)[0] % 128
    los = list(struct.unpack_from(f"<{len(groups)}H", spec, 3))
    delta = struct.unpack_from("<b", spec, 3 + 2 * len(groups))[0]
    raw_ids = spec[4 + 2 * len(groups):][:128]
    ids = [t for (t,) in struct.iter_unpack("<H", raw_ids[:len(raw_ids) & ~1])] or [1]
    if flags & 1:
        ids = (ids * (length // len(ids) + 1))[:length]
    if flags & 2:
        los = [0 if not g["ring_blocks"] or length == 0 else min(lo, length - 1) // B * B for lo, g in zip(los, groups)]
    size = 8 * (1 + len(groups))
    for lo, g in zip(los, groups):
        size += max(0, (length + B - 1) // B - lo // B) * g["block_bytes"]
    size = max(size + delta, 0)
    head = struct.pack(f"<q{len(groups)}q", length, *los)
    body = (fill or b"\x3c") * (size // max(len(fill), 1) + 1)
    return ids, (head + body)[:size]


def _data_for(data: bytes) -> bytes:
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        return rest
    if mode == 3:  # flip one byte of a valid file
        if not rest:
            return valid_file
        at = int.from_bytes(rest[:4].ljust(4, b"\0"), "little") % len(valid_file)
        return valid_file[:at] + bytes([valid_file[at] ^ (rest[4] if len(rest) > 4 and rest[4] else 1)]) + valid_file[at + 1:]
    head, _, tail = rest.partition(b"\0\0")
    if mode == 1:  # this model's header and a KV payload of (nearly) the right shape
        tokens, payload = _kv_payload(head, tail)
        header = {**expected, "tokens": tokens, "format": prompt_cache.FORMAT, "payload_bytes": len(payload)}
        return _file(json.dumps(header, sort_keys=True).encode(), payload)
    return _file(head, tail)  # mode 2: any header text, any payload


def _check_blocks() -> None:
    """Every KV block is free or referenced by a sequence's table, and counted as often."""
    cache = llm.backend.kv_cache
    for g, grp in enumerate(cache.layout["groups"]):
        refs: dict[int, int] = {}
        for seq in range(cache.layout["n_seq"]):
            for b in cache.block_table(seq, g):
                if b >= 0:
                    refs[b] = refs.get(b, 0) + 1
        assert all(cache.block_refcount(b, g) == n for b, n in refs.items()), "block reference counts"
        assert cache.free_blocks(g) + len(refs) == grp["n_blocks"], "a KV block held by nobody"


def test_one_input(data: bytes) -> None:
    if llm is None:
        setup()
    if not data:
        return
    path = _dir / "fuzz.egkv"
    path.write_bytes(_data_for(data))
    try:
        n = llm.load_prefix(path)
    except (PromptCacheError, MemoryBudgetError) as exc:
        assert str(exc)
        _check_blocks()
        return
    header, _ = prompt_cache.read(path, expected)
    assert n == len(header["tokens"]) and 0 < n < llm.n_ctx, n
    _check_blocks()
    ids = [int(t) for t in header["tokens"]]
    from edgegen.llm import PreparedPrompt

    try:
        out = llm.generate(PreparedPrompt("", tuple(ids), llm=llm), max_tokens=1, temperature=0)  # resumes after it
        assert isinstance(out.text, str)
    finally:
        sched = llm.backend.scheduler  # the next input starts from an empty cache
        sched.run_exclusive(lambda _slot: sched.drop_saved_prefixes())
    _check_blocks()
    assert all(llm.backend.kv_cache.free_blocks(g) == grp["n_blocks"]
               for g, grp in enumerate(llm.backend.kv_cache.layout["groups"])), "blocks left after dropping"
