"""Prompt cache files: the KV of a prompt prefix (a system prompt) kept on disk, so a restart does
not compute it again (`LLM.save_prefix` / `LLM.load_prefix`, `edgegen serve --prompt-cache DIR`).

A file is never trusted: it records the model file's sha256, the engine version and instruction
set, the KV type and layout, and the prefix's token ids, and ends with a sha256 of everything
before it. A file that is truncated, corrupt, or made for another model, engine, instruction set
or KV layout raises PromptCacheError (with `reason`), and the caller computes the prefix again.
Writes go to a temporary file that is fsynced and renamed over the target: a crash leaves the
old file or the new one, never half of one.

    MAGIC | u32 header length | header (JSON, UTF-8) | KV payload (KVCache.seq_export) | sha256
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any, Union

from .errors import PromptCacheError

MAGIC = b"EDGEGEN-PROMPT-KV"
FORMAT = 1
SUFFIX = ".egkv"
_HASHES_FILE = ".model-sha256.json"  # in a cache directory: sha256 per (model path, size, mtime)
_memo: dict[tuple[str, int, int], str] = {}
_memo_lock = threading.Lock()


def _file_key(path: Union[str, os.PathLike]) -> tuple[str, int, int]:
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def model_sha256(path: Union[str, os.PathLike], memo_dir: Union[None, str, os.PathLike] = None) -> str:
    """The model file's sha256, remembered per (path, size, mtime) in this process and, when
    `memo_dir` is given, in a small JSON file there (a kiosk boot then does not hash the model)."""
    key = _file_key(path)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    memo_file = Path(memo_dir) / _HASHES_FILE if memo_dir is not None else None
    stored: dict[str, Any] = {}
    if memo_file is not None:
        try:
            stored = json.loads(memo_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        entry = stored.get(key[0]) if isinstance(stored, dict) else None
        if isinstance(entry, dict) and entry.get("size") == key[1] and entry.get("mtime_ns") == key[2]:
            digest = str(entry.get("sha256", ""))
            if len(digest) == 64:
                with _memo_lock:
                    _memo[key] = digest
                return digest
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _memo_lock:
        _memo[key] = digest
    if memo_file is not None:
        stored = stored if isinstance(stored, dict) else {}
        stored[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        try:
            atomic_write(memo_file, json.dumps(stored, indent=1).encode())
        except OSError:
            pass  # only a speed-up
    return digest


def atomic_write(path: Union[str, os.PathLike], data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def encode(header: dict[str, Any], payload: bytes) -> bytes:
    head = json.dumps({**header, "format": FORMAT, "payload_bytes": len(payload)}, sort_keys=True).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + payload
    return body + hashlib.sha256(body).digest()


def write(path: Union[str, os.PathLike], header: dict[str, Any], payload: bytes) -> None:
    try:
        atomic_write(path, encode(header, payload))
    except OSError as exc:
        raise PromptCacheError(f"cannot write prompt cache {path}: {exc}", reason="io") from exc


def read(path: Union[str, os.PathLike], expect: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a valid file whose header matches `expect` on every key; else
    PromptCacheError naming what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PromptCacheError(f"cannot read prompt cache {path}: {exc}", reason="io") from exc
    name = os.path.basename(path)
    fixed = len(MAGIC) + 4
    if len(data) < fixed + 32:
        raise PromptCacheError(f"prompt cache {name} is truncated ({len(data)} bytes)", reason="truncated")
    if data[:len(MAGIC)] != MAGIC:
        raise PromptCacheError(f"{name} is not an edgegen prompt cache file", reason="corrupt")
    (n_head,) = struct.unpack("<I", data[len(MAGIC):fixed])
    if fixed + n_head + 32 > len(data):
        raise PromptCacheError(f"prompt cache {name} is truncated (header)", reason="truncated")
    try:
        header = json.loads(data[fixed:fixed + n_head].decode("utf-8"))
        payload_bytes = int(header["payload_bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PromptCacheError(f"prompt cache {name} has a corrupt header", reason="corrupt") from exc
    end = fixed + n_head + payload_bytes
    if len(data) < end + 32:
        raise PromptCacheError(f"prompt cache {name} is truncated ({len(data)} of {end + 32} bytes)", reason="truncated")
    if len(data) > end + 32 or hashlib.sha256(data[:end]).digest() != data[end:end + 32]:
        raise PromptCacheError(f"prompt cache {name} is corrupt (checksum mismatch)", reason="corrupt")
    if header.get("format") != FORMAT:
        raise PromptCacheError(f"prompt cache {name} has format {header.get('format')!r}, not {FORMAT}", reason="engine")
    reasons = {"model_sha256": "model", "engine": "engine", "isa": "engine", "kv_type": "kv", "layout": "kv"}
    for key, want in expect.items():
        if header.get(key) != want:
            raise PromptCacheError(
                f"prompt cache {name} was made with {key} {header.get(key)!r}, this model has {want!r}",
                reason=reasons.get(key, "corrupt"))
    tokens = header.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, int) and t >= 0 for t in tokens):
        raise PromptCacheError(f"prompt cache {name} has no valid token ids", reason="corrupt")
    return header, data[fixed + n_head:end]


def file_name(text: str) -> str:
    """The cache file name for a prefix's text (the server's --prompt-cache directory)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + SUFFIX


# ---- the LLM-level operations (LLM.save_prefix / load_prefix / ensure_prefix call these) --------

def prefix_ids(llm: Any, prefix: Any) -> list[int]:
    """Token ids of a prefix: a text (tokenized as a raw prompt) or chat messages (rendered without
    the generation prompt: the start of every chat that begins with them)."""
    if isinstance(prefix, str):
        ids = llm.tokenize(prefix)
    else:
        ids = list(llm.prepare_chat(prefix, add_generation_prompt=False).ids)
    if not ids:
        from .errors import InvalidRequestError

        raise InvalidRequestError("the prefix is empty: it produced no tokens")
    if len(ids) >= llm.n_ctx:
        from .errors import ContextOverflowError

        raise ContextOverflowError(f"the prefix is {len(ids)} tokens; the context window is {llm.n_ctx}")
    return ids


def _backend(llm: Any) -> Any:
    be = llm.backend
    if not hasattr(be, "export_prefix"):
        from .errors import UnsupportedModelError

        raise UnsupportedModelError(f"prompt cache files need the native backend (this model runs on {be.name})")
    return be


def expected_header(llm: Any, path: Union[str, os.PathLike]) -> dict[str, Any]:
    be = _backend(llm)
    return {"model_sha256": model_sha256(llm.model_path, Path(path).parent), **be.prefix_fingerprint()}


def save_prefix(llm: Any, prefix: Any, path: Union[str, os.PathLike]) -> int:
    """Computes (or reuses) the KV of `prefix`, keeps it for later requests, and writes it to
    `path` atomically. Returns the prefix's token count."""
    ids = prefix_ids(llm, prefix)
    header = expected_header(llm, path)
    payload = _backend(llm).export_prefix(ids)
    text = prefix if isinstance(prefix, str) else llm.render_chat(prefix, add_generation_prompt=False)
    write(path, {**header, "tokens": ids, "text": text}, payload)
    return len(ids)


def load_prefix(llm: Any, path: Union[str, os.PathLike]) -> int:
    """Loads a prefix saved by save_prefix into the model's saved prefixes; later prompts that
    start with it resume after it. Raises PromptCacheError for a file it must not trust."""
    header, payload = read(path, expected_header(llm, path))
    n = len(header["tokens"])
    if n >= llm.n_ctx:  # save_prefix never writes one: the KV would fill the whole context window
        raise PromptCacheError(f"prompt cache {os.path.basename(path)} holds a {n}-token prefix; the context "
                               f"window is {llm.n_ctx}", reason="kv")
    return _backend(llm).import_prefix(header["tokens"], payload)


def ensure_prefix(llm: Any, prefix: Any, path: Union[str, os.PathLike]) -> str:
    """'loaded' when `path` holds this prefix for this model; else computes it, rewrites the file
    and returns 'computed' (a bad file is replaced, never used)."""
    ids = prefix_ids(llm, prefix)
    try:
        header, payload = read(path, expected_header(llm, path))
        if header["tokens"] == ids:
            _backend(llm).import_prefix(ids, payload)
            return "loaded"
    except PromptCacheError:
        pass
    save_prefix(llm, prefix, path)
    return "computed"


class CacheDir:
    """`edgegen serve --prompt-cache DIR`: system prompts' KV kept in DIR, one file per prompt.

    At start every file is loaded (a bad one is logged and deleted: its prefix is computed again
    on first use); a chat whose first message is a system prompt not on disk yet is saved in the
    background, once."""

    def __init__(self, llm: Any, directory: Union[str, os.PathLike]) -> None:
        _backend(llm)
        self.llm = llm
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PromptCacheError(f"cannot create prompt cache directory {directory}: {exc}", reason="io") from exc
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def load_all(self) -> int:
        import logging

        log = logging.getLogger("edgegen.server")
        loaded = 0
        for path in sorted(self.dir.glob("*" + SUFFIX)):
            try:
                load_prefix(self.llm, path)
                loaded += 1
                self._known.add(path.name)
            except PromptCacheError as exc:
                log.warning("prompt cache: %s; it will be computed again", exc)
                try:
                    path.unlink()
                except OSError:
                    pass
        return loaded

    def remember(self, messages: Any) -> None:
        """Saves the system prompt of `messages` (validated chat) in the background if new."""
        if not messages or messages[0].get("role") != "system":
            return
        prefix = [messages[0]]
        name = file_name(self.llm.render_chat(prefix, add_generation_prompt=False))
        with self._lock:
            if name in self._known:
                return
            self._known.add(name)

        def save() -> None:
            import logging

            try:
                save_prefix(self.llm, prefix, self.dir / name)
            except Exception as exc:  # noqa: BLE001 - a cache write never fails a request
                logging.getLogger("edgegen.server").warning("prompt cache: cannot save %s: %s", name, exc)
                with self._lock:
                    self._known.discard(name)

        threading.Thread(target=save, name="edgegen-prompt-cache", daemon=True).start()
