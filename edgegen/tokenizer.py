"""Tokenizers built from GGUF metadata, producing exactly llama.cpp's token ids.

Two vocabulary kinds (``tokenizer.ggml.model``):

* ``gpt2`` — byte-level BPE (SmolLM2, Qwen2, Llama 3 ...). Encoding runs on HF ``tokenizers``
  (a BPE model from the GGUF vocab + merges, with the split regexes llama.cpp uses for the file's
  ``tokenizer.ggml.pre`` in front of a byte-level mapping).
* ``llama`` — SentencePiece-style BPE over scores (Llama 1/2, Gemma), with ``<0xXX>`` byte
  fallback. This is a direct port of llama.cpp's ``llm_tokenizer_spm_session``: llama.cpp merges
  into any vocabulary entry (control tokens included) and breaks score ties by position, which
  neither ``sentencepiece`` nor a ``tokenizers`` BPE built from scores reproduces exactly.

Special tokens are split out of the text first, exactly as llama.cpp's ``tokenizer_st_partition``
does: longest first; control/unknown tokens only when ``parse_special=True``, user-defined ones
always. Decoding follows ``llama_detokenize`` (and ``StreamDecoder`` never emits half a UTF-8
character).
"""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .errors import ModelFormatError, TokenizerError, UnsupportedModelError
from .textstream import Utf8StreamDecoder

if TYPE_CHECKING:
    from .gguf import GGUFFile

__all__ = ["Tokenizer", "StreamDecoder"]

# llama.cpp token types (tokenizer.ggml.token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class _PreTokenizer:
    regexes: tuple[str, ...]   # applied in sequence, matches and gaps both kept (llama.cpp)
    clean_spaces: bool = True  # llama.cpp's clean_up_tokenization_spaces on detokenize
    ignore_merges: bool = False  # a whole pre-token found in the vocabulary is not merged
    add_bos: bool = False

# tokenizer.ggml.pre -> llama.cpp's pre-tokenizer settings (llama-vocab.cpp), for the names we run.
_PRE: dict[str, _PreTokenizer] = {
    "smollm": _PreTokenizer((r"\p{N}", _GPT2), clean_spaces=False),
    "starcoder": _PreTokenizer((r"\p{N}", _GPT2)),
    "refact": _PreTokenizer((r"\p{N}", _GPT2)),
    "gpt-2": _PreTokenizer((_GPT2,)),
    "phi-2": _PreTokenizer((_GPT2,)),
    "llama3": _PreTokenizer((_LLAMA3,), ignore_merges=True, add_bos=True),
    "llama-v3": _PreTokenizer((_LLAMA3,), ignore_merges=True, add_bos=True),
    "llama-bpe": _PreTokenizer((_LLAMA3,), ignore_merges=True, add_bos=True),
    "qwen2": _PreTokenizer((_QWEN2,), clean_spaces=False),
}

# llama.cpp token attributes (bit flags); token types from the file map onto them.
A_UNKNOWN, A_UNUSED, A_NORMAL, A_CONTROL, A_USER_DEFINED, A_BYTE = 1, 2, 4, 8, 16, 32
_TYPE_TO_ATTR = {UNKNOWN: A_UNKNOWN, UNUSED: A_UNUSED, NORMAL: A_NORMAL, CONTROL: A_CONTROL,
                 USER_DEFINED: A_USER_DEFINED, BYTE: A_BYTE}

# llama.cpp (llama-vocab.cpp) recognizes these token texts when the metadata does not name the
# token; a recognized token also becomes a control token. Order: first match wins here.
_BY_TEXT = {
    "eot": ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
            "_<EOT>", "[EOT]", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<end_of_utterance>"],
    "eom": ["<|eom_id|>"],
    "fim_pre": ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\uff5cfim\u2581begin\uff5c>", "<PRE>",
                "\u2581<PRE>", "<|code_prefix|>", "<|prefix|>"],
    "fim_suf": ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\uff5cfim\u2581hole\uff5c>", "<SUF>",
                "\u2581<SUF>", "<|code_suffix|>", "<|suffix|>"],
    "fim_mid": ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\uff5cfim\u2581end\uff5c>", "<MID>",
                "\u2581<MID>", "<|code_middle|>", "<|middle|>"],
    "fim_pad": ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    "fim_rep": ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
    "fim_sep": ["<|file_sep|>"],
}
# Texts that end generation (and become control tokens) whatever the metadata says.
_EOG_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
              "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
              "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
              "<\uff5cend\u2581of\u2581sentence\uff5c>", "[e~["}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte <-> printable-character map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


class Tokenizer:
    """Text <-> token ids for one GGUF vocabulary. Build with `Tokenizer.from_gguf(file)`."""

    def __init__(self, *, model: str, tokens: list[str], token_types: np.ndarray, scores: np.ndarray | None,
                 merges: list[str] | None, pre: str, special_ids: dict[str, int], add_bos: bool | None,
                 add_eos: bool | None, add_space_prefix: bool | None) -> None:
        if model not in ("gpt2", "llama"):
            raise UnsupportedModelError(f"tokenizer model {model!r} is not supported (gpt2 and llama are)")
        self.model = model
        self._tokens = tokens
        self.vocab_size = len(tokens)
        self._token_to_id = {t: i for i, t in enumerate(tokens)}  # duplicates: last wins, as in llama.cpp
        types = token_types.astype(np.int32, copy=False) if token_types is not None else np.full(len(tokens), NORMAL, np.int32)
        self._attr = [_TYPE_TO_ATTR.get(int(t), 0) for t in types]
        self.bos_id: int | None = special_ids.get("bos")
        self.eos_id: int | None = special_ids.get("eos")
        self.unk_id: int | None = special_ids.get("unknown")
        if model == "gpt2":
            settings = _PRE.get(pre)
            if settings is None:
                raise UnsupportedModelError(f"pre-tokenizer {pre!r} is not supported by the native tokenizer")
            self._pre = settings
            self.add_bos = settings.add_bos if add_bos is None else add_bos
            self.add_eos = bool(add_eos)
            self.add_space_prefix = False
            self._clean_spaces = settings.clean_spaces
            self._bpe = self._build_bpe(merges or [], settings)
        else:
            self.add_bos = True if add_bos is None else add_bos
            self.add_eos = bool(add_eos)
            self.add_space_prefix = True if add_space_prefix is None else add_space_prefix
            self._clean_spaces = False
            self._scores = [float(s) for s in scores] if scores is not None else [0.0] * len(tokens)
            self._byte_ids = [self._token_to_id.get(f"<0x{b:02X}>", -1) for b in range(256)]

        self.eog_ids: frozenset[int] = self._llamacpp_token_fixups(special_ids)
        self.eot_id: int | None = self._found.get("eot")
        self.eom_id: int | None = self._found.get("eom")

        # Special tokens split out of the text before encoding, longest first.
        special = [i for i, a in enumerate(self._attr) if a & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN) and tokens[i]]
        special.sort(key=lambda i: -len(tokens[i].encode()))
        # (text, id, split even without parse_special)
        self._special = [(tokens[i], i, not self._attr[i] & (A_CONTROL | A_UNKNOWN)) for i in special]
        self._pieces: list[bytes] | None = None

    def _llamacpp_token_fixups(self, special_ids: dict[str, int]) -> frozenset[int]:
        """llama.cpp's load-time adjustments (llama_vocab::impl::load): special tokens found by
        text, attributes forced to control, and the end-of-generation set."""
        ids, attr = self._token_to_id, self._attr
        self._found: dict[str, int] = {}
        for name, texts in _BY_TEXT.items():
            tid = special_ids.get(name)
            if tid is None:
                tid = next((ids[t] for t in texts if t in ids), None)
                if tid is not None:
                    attr[tid] |= A_CONTROL
            if tid is not None:
                self._found[name] = tid
        eog = {self._found[k] for k in ("fim_pad", "fim_rep", "fim_sep") if k in self._found}
        for t in _EOG_TEXTS:
            if t in ids:
                eog.add(ids[t])
                attr[ids[t]] |= A_CONTROL
        for t in ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"):  # gpt-oss: always rendered
            if t in ids:
                attr[ids[t]] = A_USER_DEFINED
        for tid in (self.eos_id, self._found.get("eot"), self._found.get("eom")):
            if tid is not None:
                eog.add(tid)
        texts = {self._tokens[i]: i for i in eog}
        if ("<|return|>" in texts and "<|call|>" in texts and "<|end|>" in texts) or (
                ("<|call|>" in texts or "<|calls|>" in texts) and "<|flush|>" in texts and "<|end|>" in texts):
            eog.discard(texts["<|end|>"])
            attr[texts["<|end|>"]] = A_USER_DEFINED
        if ("<|tool_response>" in texts or "<|plamo:eos|>" in texts) and "</s>" in texts:
            eog.discard(texts["</s>"])  # gemma4/plamo: a normal </s>
            attr[texts["</s>"]] = A_NORMAL
        for name in ("eos", "eot", "eom"):  # llama.cpp re-adds these after the workarounds
            tid = self.eos_id if name == "eos" else self._found.get(name)
            if tid is not None:
                eog.add(tid)
        return frozenset(eog)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, gguf: GGUFFile | str | os.PathLike[str]) -> Tokenizer:
        """Builds the tokenizer from a GGUFFile's metadata (or opens the file at a path)."""
        from .gguf import GGUFFile

        if not isinstance(gguf, GGUFFile):
            with GGUFFile(gguf) as f:
                return cls.from_gguf(f)
        md = gguf.metadata
        if "tokenizer.ggml.tokens" not in md:
            raise ModelFormatError(f"{gguf.path}: no tokenizer in the file (tokenizer.ggml.tokens is missing)")
        prefix, suffix = "tokenizer.ggml.", "_token_id"
        special_ids = {k[len(prefix):-len(suffix)]: int(v) for k, v in md.items()
                       if k.startswith(prefix) and k.endswith(suffix)}  # ids range-checked by the reader

        def flag(key: str) -> bool | None:
            v = md.get(key)
            return None if v is None else bool(v)

        model = md.get("tokenizer.ggml.model", "")
        if model == "llama" and "tokenizer.ggml.scores" not in md:
            raise ModelFormatError(f"{gguf.path}: SentencePiece vocabulary without tokenizer.ggml.scores")
        if model == "gpt2" and "tokenizer.ggml.merges" not in md:
            raise ModelFormatError(f"{gguf.path}: BPE vocabulary without tokenizer.ggml.merges")
        return cls(model=model, tokens=md["tokenizer.ggml.tokens"], token_types=md.get("tokenizer.ggml.token_type"),
                   scores=md.get("tokenizer.ggml.scores"), merges=md.get("tokenizer.ggml.merges"),
                   pre=md.get("tokenizer.ggml.pre", "default"), special_ids=special_ids,
                   add_bos=flag("tokenizer.ggml.add_bos_token"), add_eos=flag("tokenizer.ggml.add_eos_token"),
                   add_space_prefix=flag("tokenizer.ggml.add_space_prefix"))

    def _build_bpe(self, merges: list[str], settings: _PreTokenizer):
        from tokenizers import Regex
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, pre_tokenizers

        pairs = []
        for m in merges:
            pos = m.find(" ", 1)  # llama.cpp splits at the first space after the first character
            if pos < 0:
                raise ModelFormatError(f"malformed BPE merge {m!r}")
            pairs.append((m[:pos], m[pos + 1:]))
        try:
            bpe = models.BPE(vocab=dict(self._token_to_id), merges=pairs, ignore_merges=settings.ignore_merges)
        except Exception as e:  # tokenizers raises on merges naming unknown tokens
            raise ModelFormatError(f"inconsistent BPE vocabulary/merges: {e}") from e
        tok = HFTokenizer(bpe)
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in settings.regexes]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        return tok

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids for `text`, as llama.cpp's llama_tokenize(add_special, parse_special)."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode() takes str, not {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TokenizerError(f"text is not valid Unicode (lone surrogate at {e.start})") from None
        out: list[int] = []
        if add_special and self.add_bos:
            if self.bos_id is None:
                raise TokenizerError("the vocabulary asks for a BOS token but defines none")
            out.append(self.bos_id)
        prev_special = True
        for piece in self._partition(text, parse_special):
            if isinstance(piece, int):
                out.append(piece)
                prev_special = True
                continue
            if self.model == "gpt2":
                out.extend(self._bpe.encode(piece, add_special_tokens=False).ids)
            else:
                if self.add_space_prefix and prev_special:
                    piece = " " + piece
                out.extend(self._spm_encode(piece.replace(" ", "\u2581")))
            prev_special = False
        if add_special and self.add_eos:
            if self.eos_id is None:
                raise TokenizerError("the vocabulary asks for an EOS token but defines none")
            out.append(self.eos_id)
        return out

    def _partition(self, text: str, parse_special: bool) -> list[str | int]:
        """llama.cpp's tokenizer_st_partition: text fragments and special-token ids, in order."""
        frags: list[str | int] = [text] if text else []
        for tok_text, tok_id, user_defined in self._special:
            if not parse_special and not user_defined:
                continue
            nxt: list[str | int] = []
            for frag in frags:
                if isinstance(frag, int) or tok_text not in frag:
                    nxt.append(frag)
                    continue
                parts = frag.split(tok_text)
                for k, part in enumerate(parts):
                    if part:
                        nxt.append(part)
                    if k < len(parts) - 1:
                        nxt.append(tok_id)
            frags = nxt
        return frags

    def _spm_encode(self, text: str) -> list[int]:
        """llama.cpp's SPM merge: repeatedly join the adjacent pair whose concatenation is the
        best-scoring vocabulary entry (ties: leftmost); unknown characters fall back to bytes."""
        sym = list(text)  # current symbol texts; "" once merged away
        n = len(sym)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        vocab, scores = self._token_to_id, self._scores
        heap: list[tuple[float, int, int, int]] = []  # (-score, left, right, merged length)

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            merged = sym[left] + sym[right]
            tid = vocab.get(merged)
            if tid is not None:
                heapq.heappush(heap, (-scores[tid], left, right, len(merged)))

        for i in range(1, n):
            push(i - 1, i)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            if not sym[left] or not sym[right] or len(sym[left]) + len(sym[right]) != size:
                continue  # stale: one side was merged since this pair was queued
            sym[left] += sym[right]
            sym[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prv[nxt[right]] = left
            push(prv[left], left)
            push(left, nxt[left])

        out: list[int] = []
        i = 0 if n else -1
        while i != -1:
            tid = vocab.get(sym[i])
            if tid is not None:
                out.append(tid)
            else:
                for b in sym[i].encode("utf-8"):
                    bid = self._byte_ids[b]
                    if bid < 0:
                        if self.unk_id is None:
                            raise TokenizerError(f"character {sym[i]!r} has no token and no byte fallback")
                        bid = self.unk_id
                    out.append(bid)
            i = nxt[i]
        return out

    # -- decoding ---------------------------------------------------------------------------

    def _piece_table(self) -> list[bytes]:
        if self._pieces is None:
            pieces = []
            for text, a in zip(self._tokens, self._attr):
                if a & (A_CONTROL | A_UNKNOWN | A_USER_DEFINED):
                    pieces.append(text.encode())
                elif a & A_NORMAL and self.model == "llama":
                    pieces.append(text.replace("\u2581", " ").encode())
                elif a & A_NORMAL:
                    try:
                        pieces.append(bytes(_UNICODE_TO_BYTE[c] for c in text))
                    except KeyError:
                        pieces.append(text.encode())  # not byte-level text: llama.cpp emits it marked; we keep it
                elif a & A_BYTE and len(text) == 6 and text.startswith("<0x"):
                    pieces.append(bytes([int(text[3:5], 16)]))
                else:
                    pieces.append(b"")  # unused/undefined types are suppressed like control tokens
            self._pieces = pieces
        return self._pieces

    def _check_id(self, token_id: int) -> int:
        if isinstance(token_id, (bool, np.bool_)) or not isinstance(token_id, (int, np.integer)):
            raise TokenizerError(f"token id must be an int, not {type(token_id).__name__}")
        if not 0 <= token_id < self.vocab_size:
            raise TokenizerError(f"token id {int(token_id)} is outside the vocabulary [0, {self.vocab_size})")
        return int(token_id)

    def token_to_bytes(self, token_id: int, special: bool = False) -> bytes:
        """The bytes of one token (llama.cpp's token_to_piece); control tokens give b"" unless `special`."""
        i = self._check_id(token_id)
        if self._attr[i] & (A_CONTROL | A_UNKNOWN) and not special:
            return b""
        return self._piece_table()[i]

    def decode_bytes(self, ids: Iterable[int], special: bool = False) -> bytes:
        """Exactly llama_detokenize(remove_special=True, unparse_special=special), as bytes."""
        return self._detokenize(ids, special, strip_after_bos=False)

    def decode(self, ids: Iterable[int], special: bool = False) -> str:
        """Text of `ids`, so that decode(encode(text)) == text; invalid UTF-8 becomes U+FFFD.

        Same as llama_detokenize except after a leading BOS, where llama.cpp keeps the space its
        own encoder inserted (add_space_prefix) and we drop it, as llama-cpp-python does."""
        return self._detokenize(ids, special, strip_after_bos=True).decode("utf-8", errors="replace")

    def _detokenize(self, ids: Iterable[int], special: bool, strip_after_bos: bool) -> bytes:
        ids = [self._check_id(t) for t in ids]
        strip = self.add_space_prefix
        if self.add_bos and ids and ids[0] == self.bos_id:
            ids = ids[1:]
            strip = strip and strip_after_bos
        if self.add_eos and ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        parts = [self.token_to_bytes(t, special) for t in ids]
        if strip and parts and parts[0].startswith(b" "):
            parts[0] = parts[0][1:]
        out = b"".join(parts)
        return _clean_spaces(out) if self._clean_spaces else out

    def is_eog(self, token_id: int) -> bool:
        """True for tokens that end generation (eos, eot, eom and llama.cpp's known end markers)."""
        return self._check_id(token_id) in self.eog_ids

    def stream_decoder(self, special: bool = False) -> StreamDecoder:
        return StreamDecoder(self, special)


class StreamDecoder:
    """Turns a stream of token ids into text deltas that never split a UTF-8 character.

    Bytes of an incomplete character are held until the token that completes it arrives;
    bytes that can never form a character come out as U+FFFD. Call `flush()` at the end.
    The UTF-8 side is `edgegen.textstream.Utf8StreamDecoder`, the one `LLM` streams use.
    """

    def __init__(self, tokenizer: Tokenizer, special: bool = False) -> None:
        self._tok = tokenizer
        self._special = special
        self._utf8 = Utf8StreamDecoder()

    def push(self, token_id: int) -> str:
        """Text completed by this token ("" while a character is still incomplete)."""
        return self._utf8.feed(self._tok.token_to_bytes(token_id, self._special))

    def flush(self) -> str:
        """Ends the stream: a dangling incomplete character becomes U+FFFD."""
        return self._utf8.flush()


def _clean_spaces(text: bytes) -> bytes:
    """llama.cpp's clean_up_tokenization_spaces: a literal port of the three in-place passes in
    llama_detokenize (quirks included, e.g. the zeroed byte of the second pass)."""
    t = bytearray(text)

    def compact(step) -> None:  # step(i, total) -> new total; writes through t like the C loop
        nonlocal t
        total = 1 if t else 0
        i = 1
        while i < len(t):
            total, i = step(i, total)
            i += 1
        del t[total:]

    def spaces_before_punct(i: int, total: int) -> tuple[int, int]:
        x = t[i]
        if t[i - 1] == 0x20 and x in b"?!.,":
            total -= 1
        t[total] = x
        return total + 1, i

    def lone_apostrophe(i: int, total: int) -> tuple[int, int]:
        x = t[i]
        if x == 0x27 and i + 1 < len(t) and t[i - 1] == 0x20 and t[i + 1] == 0x20:
            total -= 1
            i += 1
            t[i] = 0
        t[total] = x
        return total + 1, i

    def contractions(i: int, total: int) -> tuple[int, int]:
        x = t[i]
        if t[i - 1] == 0x20 and x == 0x27 and i + 1 < len(t):
            x1 = t[i + 1]
            if x1 in b"sm":
                total -= 1
            elif x1 not in b"td" and i + 2 < len(t) and bytes(t[i + 1:i + 3]) in (b"re", b"ve"):
                total -= 1
        t[total] = x
        return total + 1, i

    for step in (spaces_before_punct, lone_apostrophe, contractions):
        compact(step)
    return bytes(t)
