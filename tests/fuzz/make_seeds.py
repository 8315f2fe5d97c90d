"""Writes the generated seed files of tests/fuzz/corpus/ (run once; the files are committed).

    PYTHONPATH=. python tests/fuzz/make_seeds.py

GGUF seeds: the tiny llama of the malformed-file tests, and the shapes of llama.cpp's and
Ollama's public GGUF crash reports (the descriptions are public; these files are rebuilt from
them, on our tiny model):
  * CVE-2024-23496 (gguf_fread_str): a string length of 2^64 - 1, whose +1 wrapped to a zero-byte
    allocation that the read then overflowed;
  * CVE-2024-21825 / 21836 / 21802 family (Talos, 2024): n_kv, n_tensors and n_dims so large that
    count * size wraps or the per-tensor arrays overflow;
  * CVE-2025-49847 (vocabulary): a token text longer than INT32_MAX bytes declared in the file,
    whose length turned negative in token_to_piece's copy;
  * llama.cpp #18674 (2026): a tensor dimension of 2^42 + 1 whose byte size wraps to 0 over 64 bits;
  * CVE-2026-7482 (Ollama): tensor offset and size past the end of the file (read out of bounds
    and exfiltrated);
  * the 2026 PLaMo-2 tokenizer write: byte tokens "<0x-1>", "<0xZZ>" (type 6) in the vocabulary;
  * llama.cpp #26690: tokenizer.ggml.scores / token_type declared with a 1-byte element type;
  * general.alignment as INT32 and as 0 (assertion crash in llama.cpp).
"""
from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "gguf"))
sys.path.insert(0, str(ROOT))

from gguf import GGUFValueType as VT  # noqa: E402
from gguf_bytes import KV, Spec, Tensor, build, gstr  # noqa: E402
from gguf_fixtures import tiny_llama_spec  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"


def _replace_kv(spec: Spec, key: str, kv: KV) -> Spec:
    spec.kvs = [kv if k.key == key else k for k in spec.kvs]
    return spec


def gguf_seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {"tiny-llama": build(tiny_llama_spec())}
    header = b"GGUF" + struct.pack("<I", 3)
    # CVE-2024-23496: string length 2^64 - 1 for the first key
    out["cve-2024-23496-string-len-wrap"] = header + struct.pack("<QQ", 0, 1) + struct.pack("<Q", 2**64 - 1) + b"general"
    # Talos 2024 family: counts that wrap count * record size
    out["talos-2024-n-kv-huge"] = header + struct.pack("<QQ", 0, 2**63 + 1) + gstr("a") + struct.pack("<IB", 0, 1)
    out["talos-2024-n-tensors-huge"] = header + struct.pack("<QQ", 2**61, 0) + gstr("t") + struct.pack("<I", 1)
    s = tiny_llama_spec()
    s.tensors[0] = Tensor("token_embd.weight", [8, 6, 1, 1, 1, 1, 1, 1], 0, s.tensors[0].data)  # n_dims 8
    out["talos-2024-n-dims-8"] = build(s)
    # CVE-2025-49847: a vocabulary token whose declared length exceeds INT32_MAX
    s = tiny_llama_spec()
    raw = build(s)
    at = raw.find(gstr("ab"))
    out["cve-2025-49847-token-len-2g"] = raw[:at] + struct.pack("<Q", 2**31 + 5) + raw[at + 8:]
    # llama.cpp #18674: dimension 2^42 + 1 whose byte size wraps over 64 bits
    s = tiny_llama_spec()
    s.tensors[0] = Tensor("token_embd.weight", [8, 2**42 + 1], 0, s.tensors[0].data, offset=0)
    out["llamacpp-18674-dim-wrap"] = build(s)
    # CVE-2026-7482 (Ollama): tensor data past the end of the file
    s = tiny_llama_spec()
    s.tensors[-1].offset = 1 << 20
    out["cve-2026-7482-offset-past-eof"] = build(s)
    # PLaMo-2 byte tokens (2026) and #26690 narrow per-token arrays
    s = tiny_llama_spec()
    _replace_kv(s, "tokenizer.ggml.tokens", KV("tokenizer.ggml.tokens", VT.ARRAY, ["<unk>", "<s>", "</s>", "<0x-1>", "<0xZZ>", "ab"], VT.STRING))
    _replace_kv(s, "tokenizer.ggml.token_type", KV("tokenizer.ggml.token_type", VT.ARRAY, [2, 3, 3, 6, 6, 1], VT.INT32))
    out["plamo2-byte-token-negative"] = build(s)
    s = tiny_llama_spec()
    _replace_kv(s, "tokenizer.ggml.scores", KV("tokenizer.ggml.scores", VT.ARRAY, [0] * 6, VT.UINT8))
    out["llamacpp-26690-scores-uint8"] = build(s)
    s = tiny_llama_spec()
    _replace_kv(s, "general.alignment", KV("general.alignment", VT.INT32, 32))
    out["alignment-int32"] = build(s)
    s = tiny_llama_spec()
    _replace_kv(s, "general.alignment", KV("general.alignment", VT.UINT32, 0))
    out["alignment-zero"] = build(s)
    return out


def write(target: str, seeds: dict[str, bytes]) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (d / name).write_bytes(data)
    print(f"{target}: {len(seeds)} seeds")


# ---- Python targets -----------------------------------------------------------------------------
TEXTS = [
    "Hello world", "  leading and trailing  ", "The capital of France is Paris.\n\n", "naïve café — “quotes” …",
    "日本語のテキストと한국어", "emoji 👩‍👩‍👧‍👦🏳️‍🌈 and flags 🇫🇷", "tabs\tand\r\nnewlines\n\n\n", "12345678901234567890",
    "don't won't I'll we've", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", "<|endoftext|><s></s><unk><pad>",
    "\u2581\u2581spaces\u2581", "\x00\x01\x02 control \x7f", "a" * 300, " " * 64, "<0x41><0xFF>",
    "ﬁ ligature Ω ω ẞ ß İ ı", "مرحبا بالعالم", "\ufeffBOM", "\U0010ffff\U0001f600",
]


def text_seeds() -> dict[str, bytes]:
    out = {f"text-{i:02d}": t.encode("utf-8") for i, t in enumerate(TEXTS)}
    out["special-parsed"] = b"\x01" + TEXTS[9].encode()  # odd first byte: parse_special=True
    out["invalid-utf8"] = b"ab\xff\xfe\xc3\x28\xe2\x82 cd \xed\xa0\x80"  # lone surrogate via surrogateescape
    out["ids-small"] = b"\xff\x00" + struct.pack("<8i", 0, 1, 2, 3, 100, 1000, 49151, 5)
    out["ids-bad"] = b"\xff\x01" + struct.pack("<4i", -1, 2**31 - 1, 262144, 7)
    out["ids-partial-utf8"] = b"\xff\x00" + struct.pack("<3i", 244, 245, 246)
    return out


HOSTILE_TEMPLATES = [
    # CVE-2024-34359 (llama-cpp-python): server-side template injection through a model's template
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}"
    "{{ c()._module.__builtins__['__import__']('os').system('id') }}{% endif %}{% endfor %}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.append(messages) }}{{ messages }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'a' * 1000000000 }}", "{{ '%999999999d' % 1 }}", "{{ 'x'.center(10**9) }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% set x = namespace(a=1) %}{% for m in messages %}{% set x.a = x.a * 99999 %}{% endfor %}{{ x.a }}",
    "{{ raise_exception('bad role') }}", "{{ messages[0]['content'] | tojson(indent=99999999) }}",
    "{% for a in messages %}{% for b in messages %}{% for c in messages %}{{ a.content ~ b.content ~ c.content }}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{{ lipsum(10**6) }}", "{{ strftime_now('%Y' * 100000) }}", "{% generation %}x{% endgeneration %}",
    "{{ (messages | map(attribute='content') | join('x')) * 999999 }}", "{% if %}", "{{ 1/0 }}", "{{ x.y.z }}",
]
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def template_seeds() -> dict[str, bytes]:
    from edgegen.gguf import GGUFFile
    from tests.fuzz.python.common import gemma3_path, smollm2_path

    msgs = b"\0system\0You are terse.\0user\0Hi <|im_end|> {{ 7*7 }}\0assistant\0Hello\0user\0\xff\xfe"
    out = {"chatml": CHATML.encode() + msgs}
    for name, path in (("smollm2", smollm2_path()), ("gemma3", gemma3_path())):
        with GGUFFile(path) as f:
            t = f.metadata.get("tokenizer.chat_template")
        if t:
            out[name] = t.encode() + msgs
    for i, t in enumerate(HOSTILE_TEMPLATES):
        out[f"hostile-{i:02d}"] = t.encode() + msgs
    return out


def request_seeds() -> dict[str, bytes]:
    import json

    bodies = {
        "chat": {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        "chat-full": {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                      "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.7, "top_p": 0.9,
                      "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1, "presence_penalty": 0.5,
                      "frequency_penalty": 0.5, "seed": 1, "stop": ["\n"], "logit_bias": {"42": -100}, "n": 1},
        "completion": {"model": "m", "prompt": "Once upon a time", "max_tokens": 3, "stop": "."},
        "completion-list": {"model": "m", "prompt": ["a"], "echo": False},
        "speech": {"model": "tts-1", "input": "Hello there.", "voice": "alloy", "response_format": "wav", "speed": 1.0},
        "speech-voice-obj": {"model": "tts-1", "input": "x", "voice": {"id": "joe"}, "response_format": "pcm"},
        "edge-values": {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0.0, "temperature": 0,
                        "max_tokens": 16777216, "seed": 18446744073709551615, "logit_bias": {"2147483648": 1}},
    }
    out = {k: json.dumps(v).encode() for k, v in bodies.items()}
    out["nan"] = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": NaN, "speed": Infinity}'
    out["not-utf8"] = b'{"model": "m", "prompt": "\xff\xfe"}'
    out["deep"] = b'{"model": "m", "prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return out


def lora_seeds() -> dict[str, bytes]:
    """Adapters for fuzz_lora's tiny base model: valid ones and tests/engine/tiny_lora.py's hostile
    variants (each breaks one thing)."""
    import tempfile

    from tests.engine.tiny_lora import LoraConfig, write_lora
    from tests.fuzz.python.fuzz_lora import base_config

    out, tmp = {}, Path(tempfile.mkdtemp())
    variants = {"q-rank1": LoraConfig(1, ("attn_q",), layers=(0,)),
                "output-noalpha": LoraConfig(1, ("output",), fmt="F32", alpha=0.0),
                "mlp-bf16": LoraConfig(1, ("ffn_up", "ffn_down"), fmt="BF16")}
    for h in ("missing_b", "transposed", "no_target", "nan_alpha", "rank_mismatch", "token_embd"):
        variants[f"hostile-{h}"] = LoraConfig(1, ("attn_q",), layers=(0,), hostile=h)
    for name, cfg in variants.items():
        try:
            out[name] = write_lora(base_config(), cfg, tmp / f"{name}.gguf").read_bytes()
        except Exception as exc:  # noqa: BLE001 - a variant this tiny base cannot express
            print(f"lora seed {name} skipped: {exc}")
    return out


def wyoming_seeds() -> dict[str, bytes]:
    import json

    def ev(t: str, data: dict | None = None, extra: bytes = b"", payload: bytes = b"") -> bytes:
        h = {"type": t, "data": data or {}}
        if extra:
            h["data_length"] = len(extra)
        if payload:
            h["payload_length"] = len(payload)
        return json.dumps(h).encode() + b"\n" + extra + payload

    return {
        "describe": ev("describe"),
        "synthesize": ev("synthesize", {"text": "Hello there."}),
        "audio-chunk": ev("audio-start", {"rate": 16000, "width": 2, "channels": 1})
        + ev("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, payload=b"\x00\x01" * 200) + ev("audio-stop"),
        "data-length": ev("transcribe", extra=json.dumps({"language": "en"}).encode()),
        "bad-length": b'{"type": "x", "data_length": -1}\n',
        "huge-length": b'{"type": "x", "payload_length": 99999999999}\n',
        "truncated": b'{"type": "x", "payload_length": 10}\nabc',
        "not-json": b"\xff\xfe not json\n",
    }


def structured_seeds() -> dict[str, bytes]:
    """fuzz_structured inputs: mode byte (0 schema, 1 regex, 2 lark, 3 gbnf, 4 auto grammar,
    5 response_format, 6 tools, 7 tool-call reply text), text, NUL, u16 token choices."""
    import json

    sys.path.insert(0, str(ROOT / "bench"))
    from structured import SCHEMA as ROBOT  # bench/structured.py's robot-command schema

    def deep(n: int) -> dict:
        s: dict = {"type": "integer"}
        for _ in range(n):
            s = {"type": "object", "properties": {"a": s}, "required": ["a"]}
        return s

    walk = b"\0" + struct.pack("<12H", 0, 1, 7, 300, 2, 9, 4000, 5, 11, 65535, 3, 8)
    cases = {
        "schema-robot": (0, json.dumps(ROBOT)),
        "schema-refs": (0, json.dumps({"$defs": {"n": {"anyOf": [{"type": "null"}, {"type": "object", "properties":
                                      {"next": {"$ref": "#/$defs/n"}}}]}}, "$ref": "#/$defs/n"})),
        "schema-recursive-no-base": (0, json.dumps({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"},
                                                                                  "b": {"$ref": "#/$defs/a"}}})),
        "schema-deep-500": (0, json.dumps(deep(70))),
        "schema-text-deep": (0, '{"items":' * 600 + "{}" + "}" * 600),
        "schema-formats": (0, json.dumps({"type": "object", "properties": {
            "d": {"type": "string", "format": "date-time"}, "e": {"type": "string", "format": "email"},
            "p": {"type": "string", "pattern": "^(a+)+$", "minLength": 2, "maxLength": 9},
            "n": {"type": "number", "minimum": -1.5, "exclusiveMaximum": 1e308},
            "i": {"type": "integer", "minimum": 9007199254740993, "maximum": 9007199254740995},
            "l": {"type": "array", "items": {"enum": ["x", 1, None, True]}, "minItems": 3, "maxItems": 2}},
            "required": ["d"], "additionalProperties": False})),
        "schema-unsupported": (0, json.dumps({"type": "array", "uniqueItems": True, "contains": {"const": 1}})),
        "schema-bool": (0, "false"),
        "schema-enum": (0, json.dumps({"enum": [f"v{i}" for i in range(500)]})),
        "regex-catastrophic": (1, r"(a+)+(b+)+(c+)+" * 10 + r"[\s\S]{100}(x|y){50}"),
        "regex-empty-set": (1, r"[^\s\S]"),
        "regex-unicode": (1, r"[\u0000-\U0010ffff]{0,5}é+\p{L}\d{3,}"),
        "regex-bad": (1, r"(?P<x>a)(?P=x)\1(?<=b)["),
        "lark-json": (2, 'start: obj\nobj: "{" pair ("," pair)* "}"\npair: STR ":" STR\nSTR: /"[a-z]*"/\n%ignore " "'),
        "lark-never-ends": (2, 'start: a\na: "x" a'),
        "lark-bad": (2, "start: ("),
        "lark-json-block": (2, 'start: "x" j\nj: %json {"type": "object"}'),
        "lark-lexeme-and": (2, 'start: T\nT: /(?s:.+)/ & ~/(?s:<a>.*)/'),
        "gbnf-arith": (3, 'root ::= expr\nexpr ::= term (("+" | "-") term)*\nterm ::= [0-9]+ | "(" expr ")"'),
        "gbnf-missing-rule": (3, 'root ::= "a" missing_rule'),
        "gbnf-repeat": (3, 'root ::= "a"{2,5} [^\\x00-\\x1f]{0,3} "b"?'),
        "auto-gbnf": (4, 'root ::= "yes" | "no"'),
        "rf-json-object": (5, '{"type": "json_object"}'),
        "rf-json-schema": (5, json.dumps({"type": "json_schema", "json_schema": {"name": "x", "schema": ROBOT}})),
        "rf-text": (5, '{"type": "text"}'),
        "rf-bad": (5, '{"type": "xml"}'),
        "tools-two": (6, json.dumps({"tools": [
            {"type": "function", "function": {"name": "move_arm", "parameters": ROBOT}},
            {"type": "function", "function": {"name": "stop", "description": "halt"}}], "tool_choice": "required"})),
        "tools-named": (6, json.dumps({"tools": [{"type": "function", "function": {"name": "f"}}],
                                       "tool_choice": {"type": "function", "function": {"name": "f"}}})),
        "tools-bad-name": (6, json.dumps([{"type": "function", "function": {"name": "bad name!\""}}])),
        "reply-call": (7, '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n'
                          '<tool_call>{"name": "g", "arguments": {}}</tool_call>'),
        "reply-partial": (7, '<tool_call>{"name": "f", "arguments": {"a": [1, 2'),
        "reply-deep": (7, '<tool_call>{"name": "f", "arguments": ' + "[" * 3000 + "]" * 3000 + "}</tool_call>"),
        "reply-text": (7, "Sure, the answer is 42. <tool_call> is how I call tools."),
    }
    return {k: bytes([mode]) + text.encode("utf-8") + walk for k, (mode, text) in cases.items()}


def prompt_cache_seeds() -> dict[str, bytes]:
    """fuzz_prompt_cache inputs: mode byte (0 raw file, 1 this model's header + a KV payload built
    from a spec, 2 header text + payload, 3 a valid file with one byte flipped), then the rest."""
    import json

    from tests.fuzz.python import fuzz_prompt_cache as target

    target.setup()
    valid = target.valid_file
    groups = len(target.llm.backend.kv_cache.layout["groups"])

    def spec(flags: int, length: int, los: list[int], delta: int, ids: list[int]) -> bytes:
        return (bytes([flags]) + struct.pack(f"<H{groups}Hb", length, *los, delta)
                + struct.pack(f"<{len(ids)}H", *ids))

    header = {**target.expected, "tokens": [1, 2, 3], "format": 1, "payload_bytes": 4}
    return {
        "valid-file": b"\0" + valid,
        "truncated": b"\0" + valid[:len(valid) // 2],
        "not-a-cache": b"\0GGUF\x03\0\0\0",
        "flip-header": b"\3" + struct.pack("<I", 30) + b"\x20",
        "flip-payload": b"\3" + struct.pack("<I", len(valid) - 100) + b"\x01",
        "kv-exact-7": b"\1" + spec(3, 7, [0] * groups, 0, [5, 6, 7]) + b"\0\0" + b"\x00\x3c",
        "kv-exact-40": b"\1" + spec(3, 40, [32] * groups, 0, [9]) + b"\0\0" + b"\xff\x7f",
        "kv-one-short": b"\1" + spec(3, 12, [0] * groups, -1, [4]) + b"\0\0" + b"\x01",
        "kv-len-mismatch": b"\1" + spec(2, 12, [0] * groups, 0, [4, 4]) + b"\0\0" + b"\x01",
        "kv-window-odd": b"\1" + spec(1, 20, [3] * groups, 0, [4]) + b"\0\0",
        "kv-nan": b"\1" + spec(3, 9, [0] * groups, 0, [2]) + b"\0\0" + b"\xff\x7f\x00\x7c",
        "kv-too-long": b"\1" + spec(3, 127, [96] * groups, 0, [3]) + b"\0\0" + b"\x01\x02",
        "header-payload-bytes-huge": b"\2" + json.dumps({**header, "payload_bytes": 2**62}).encode() + b"\0\0abcd",
        "header-negative-tokens": b"\2" + json.dumps({**header, "tokens": [-1, 2**40]}).encode() + b"\0\0abcd",
        "header-not-object": b"\2[1, 2, 3]\0\0abcd",
        "header-bad-utf8": b"\2{\"a\": \"\xff\"}\0\0abcd",
    }


def wav_seeds() -> dict[str, bytes]:
    """fuzz_wav inputs: mode byte (0 file bytes, 1 a WAV from fuzzed header fields, 2 int16 samples
    with a rate, 3 Content-Type NUL multipart body, 4 form fields NUL-separated then the file)."""
    import io
    import math
    import wave

    def wav(rate: int, n: int, width: int = 2, channels: int = 1) -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(width)
            w.setframerate(rate)
            frames = b"".join(int(8000 * math.sin(i / 7)).to_bytes(2, "little", signed=True)[:width] * channels
                              for i in range(n))
            w.writeframes(frames)
        return buf.getvalue()

    ok = wav(16000, 800)
    stereo8k = wav(8000, 400, 2, 2)
    from tests.fuzz.python.fuzz_wav import _multipart

    ct, body = _multipart([b"whisper-1", b"en", b"a prompt", b"verbose_json", b"0.2", b"false"], ok)
    fields = b"\0".join([b"whisper-1", b"-", b"-", b"json", b"-", b"-", ok])
    return {
        "pcm16-16k": b"\0" + ok,
        "pcm16-stereo-8k": b"\0" + stereo8k,
        "pcm8-22k": b"\0" + wav(22050, 500, 1),
        "truncated-data": b"\0" + ok[:300],
        "streamed-size-ffff": b"\0" + ok[:40] + b"\xff\xff\xff\xff" + ok[44:],
        "header-only": b"\0" + ok[:44],
        "rf64": b"\0RF64" + ok[4:],
        "huge-declared-duration": b"\0" + ok[:4] + ok[4:24] + (1).to_bytes(4, "little") + ok[28:40] + (2**31).to_bytes(4, "little") + ok[44:],
        "data-before-fmt": b"\0RIFF\x20\0\0\0WAVEdata\x04\0\0\0abcdfmt \x10\0\0\0" + b"\1\0\1\0" + b"\0" * 12,
        "ogg-magic": b"\0OggS\0\2" + b"\0" * 40,
        "mp3-frame": b"\0\xff\xfb\x90\x64" + b"\0" * 400,
        "flac-magic": b"\0fLaC\0\0\0\x22" + b"\0" * 40,
        "built-pcm16": b"\1" + struct.pack("<HHIHHIH", 0, 1, 1, 1, 2, 1, 0) + ok[44:444],
        "built-float": b"\1" + struct.pack("<HHIHHIH", 1, 0, 2, 3, 4, 0, 1) + b"\0\0\x80\x3f" * 50,
        "built-alaw-odd-align": b"\1" + struct.pack("<HHIHHIH", 2, 0x8003, 5, 0, 0x8007, 7, 3) + b"\x55" * 300,
        "built-extensible-24": b"\1" + struct.pack("<HHIHHIH", 4, 1, 3, 2, 0x8006, 2, 0) + b"\x01\x02\x03" * 100,
        "array-44k": b"\2" + (44100).to_bytes(3, "little") + ok[44:],
        "array-bad-rate": b"\2" + (999).to_bytes(3, "little") + ok[44:100],
        "array-negative-rate": b"\2" + (-16000).to_bytes(3, "little", signed=True) + ok[44:100],
        "form-full": b"\3" + ct + b"\0" + body,
        "form-no-boundary": b"\3multipart/form-data\0" + body,
        "form-json": b"\3application/json\0{\"file\": \"x\"}",
        "form-truncated": b"\3" + ct + b"\0" + body[:len(body) // 2],
        "form-header-injection": b"\3" + ct + b"\0" + body.replace(b'name="file"', b'name="file"; filename*=utf-8\'\'%ff%fe'),
        "fields-ok": b"\4" + fields,
        "fields-bad": b"\4" + b"\0".join([b"gpt-9", b"xx", b"\xff", b"srt", b"nan", b"TRUE", ok[:100]]),
        "fields-temperature": b"\4" + b"\0".join([b"whisper-1", b"EN", b"-", b"text", b"1e999", b"-", ok]),
    }


def main_python() -> None:
    write("wav", wav_seeds())
    write("prompt_cache", prompt_cache_seeds())
    write("structured", structured_seeds())
    write("wyoming", wyoming_seeds())
    write("lora", lora_seeds())
    write("tokenizer_bpe", text_seeds())
    write("tokenizer_spm", text_seeds())
    write("chat_template", template_seeds())
    write("server_request", request_seeds())


def main() -> None:
    write("gguf", gguf_seeds())
    main_python()


if __name__ == "__main__":
    main()


