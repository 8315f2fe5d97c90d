"""A Piper voice config (`<voice>.onnx.json`), parsed and validated.

The fields and defaults are piper-tts 1.8.0's (`piper.config.PiperConfig.from_dict`), so the
same file means the same thing to both. The file is untrusted input: every field the runtime
relies on is checked here and a bad one raises `VoiceConfigError` naming the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from edgegen.errors import VoiceConfigError

# piper.config defaults; a config without an "inference" block uses these.
DEFAULT_NOISE_SCALE = 0.667
DEFAULT_LENGTH_SCALE = 1.0
DEFAULT_NOISE_W_SCALE = 0.8
DEFAULT_HOP_LENGTH = 256

PAD, BOS, EOS = "_", "^", "$"  # piper.const
SUPPORTED_PHONEME_TYPES = ("espeak", "text")
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a real config is a few KiB; refuse to parse a huge file
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 192_000


@dataclass(frozen=True)
class VoiceConfig:
    num_symbols: int
    num_speakers: int
    sample_rate: int
    phoneme_type: str                      # "espeak" or "text"
    espeak_voice: str                      # e.g. "en-us"; unused for phoneme_type "text"
    phoneme_id_map: Mapping[str, tuple[int, ...]]
    phoneme_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # validated; ignored, as in piper 1.8.0
    speaker_id_map: Mapping[str, int] = field(default_factory=dict)
    default_speaker_id: int = 0
    length_scale: float = DEFAULT_LENGTH_SCALE
    noise_scale: float = DEFAULT_NOISE_SCALE
    noise_w_scale: float = DEFAULT_NOISE_W_SCALE
    hop_length: int = DEFAULT_HOP_LENGTH
    vowel_clusters: Optional[frozenset[tuple[str, ...]]] = None

    @staticmethod
    def from_file(path: Path) -> "VoiceConfig":
        try:
            size = path.stat().st_size
            if size > MAX_CONFIG_BYTES:
                raise VoiceConfigError(f"{path}: voice config is {size} bytes; refusing more than {MAX_CONFIG_BYTES}")
            raw = json.loads(path.read_text(encoding="utf-8"))
        except VoiceConfigError:
            raise
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VoiceConfigError(f"{path}: not a valid JSON voice config: {exc}") from exc
        except OSError as exc:
            raise VoiceConfigError(f"{path}: cannot read voice config: {exc}") from exc
        try:
            return VoiceConfig.from_dict(raw)
        except VoiceConfigError as exc:
            raise VoiceConfigError(f"{path}: {exc}") from None

    @staticmethod
    def from_dict(raw: Any) -> "VoiceConfig":
        if not isinstance(raw, dict):
            raise VoiceConfigError("voice config must be a JSON object")
        num_symbols = _int(raw, "num_symbols", lo=1)
        num_speakers = _int(raw, "num_speakers", lo=1)
        audio = _obj(raw, "audio")
        sample_rate = _int(audio, "sample_rate", lo=MIN_SAMPLE_RATE, hi=MAX_SAMPLE_RATE, where="audio.")

        phoneme_type = raw.get("phoneme_type", "espeak")
        if phoneme_type not in SUPPORTED_PHONEME_TYPES:
            raise VoiceConfigError(
                f"phoneme_type {phoneme_type!r} is not supported (supported: {', '.join(SUPPORTED_PHONEME_TYPES)})"
            )
        espeak_voice = ""
        if phoneme_type == "espeak":
            espeak_voice = _obj(raw, "espeak").get("voice")
            if not isinstance(espeak_voice, str) or not espeak_voice or len(espeak_voice) > 64:
                raise VoiceConfigError("espeak.voice must be a non-empty espeak-ng voice name")

        id_map = _phoneme_id_map(raw.get("phoneme_id_map"), num_symbols)
        phoneme_map = _phoneme_map(raw.get("phoneme_map", {}))
        speaker_id_map = _speaker_id_map(raw.get("speaker_id_map", {}), num_speakers)
        default_speaker_id = _int(raw, "default_speaker_id", lo=0, hi=num_speakers - 1, default=0)

        inference = raw.get("inference", {})
        if not isinstance(inference, dict):
            raise VoiceConfigError("inference must be an object")
        return VoiceConfig(
            num_symbols=num_symbols,
            num_speakers=num_speakers,
            sample_rate=sample_rate,
            phoneme_type=phoneme_type,
            espeak_voice=espeak_voice,
            phoneme_id_map=id_map,
            phoneme_map=phoneme_map,
            speaker_id_map=speaker_id_map,
            default_speaker_id=default_speaker_id,
            length_scale=_scale(inference, "length_scale", DEFAULT_LENGTH_SCALE),
            noise_scale=_scale(inference, "noise_scale", DEFAULT_NOISE_SCALE),
            noise_w_scale=_scale(inference, "noise_w", DEFAULT_NOISE_W_SCALE),
            hop_length=_int(raw, "hop_length", lo=1, hi=65536, default=DEFAULT_HOP_LENGTH),
            vowel_clusters=_vowel_clusters(raw.get("vowel_clusters"), id_map),
        )


# --------------------------------------------------------------------------- field checks


def _obj(raw: dict, key: str) -> dict:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise VoiceConfigError(f"missing or invalid {key!r} (expected an object)")
    return value


def _int(raw: dict, key: str, *, lo: int, hi: int = 2**31 - 1, default: Optional[int] = None, where: str = "") -> int:
    value = raw.get(key, default)
    if value is None:
        raise VoiceConfigError(f"missing {where}{key}")
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise VoiceConfigError(f"{where}{key} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _scale(raw: dict, key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 100:
        raise VoiceConfigError(f"inference.{key} must be a finite number in [0, 100], got {value!r}")
    return float(value)


def _phoneme_id_map(value: Any, num_symbols: int) -> dict[str, tuple[int, ...]]:
    if not isinstance(value, dict) or not value:
        raise VoiceConfigError("missing or empty phoneme_id_map")
    out: dict[str, tuple[int, ...]] = {}
    for phoneme, ids in value.items():
        if not isinstance(ids, list) or not ids:
            raise VoiceConfigError(f"phoneme_id_map[{phoneme!r}] must be a non-empty list of ids")
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_symbols:
                raise VoiceConfigError(f"phoneme_id_map[{phoneme!r}] has id {i!r} outside [0, num_symbols={num_symbols})")
        out[phoneme] = tuple(ids)
    for required in (PAD, BOS, EOS):
        if required not in out:
            raise VoiceConfigError(f"phoneme_id_map lacks the {required!r} symbol (pad/bos/eos)")
    return out


def _phoneme_map(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise VoiceConfigError("phoneme_map must be an object of phoneme -> [phonemes]")
    out: dict[str, tuple[str, ...]] = {}
    for src, dst in value.items():
        if not isinstance(dst, list) or not all(isinstance(p, str) for p in dst):
            raise VoiceConfigError(f"phoneme_map[{src!r}] must be a list of strings")
        out[src] = tuple(dst)
    return out


def _speaker_id_map(value: Any, num_speakers: int) -> dict[str, int]:
    if not isinstance(value, dict):
        raise VoiceConfigError("speaker_id_map must be an object of name -> id")
    for name, sid in value.items():
        if isinstance(sid, bool) or not isinstance(sid, int) or not 0 <= sid < num_speakers:
            raise VoiceConfigError(f"speaker_id_map[{name!r}] = {sid!r} is outside [0, num_speakers={num_speakers})")
    return dict(value)


def _vowel_clusters(value: Any, id_map: Mapping[str, Any]) -> Optional[frozenset[tuple[str, ...]]]:
    if not value:
        return None
    if not isinstance(value, list):
        raise VoiceConfigError("vowel_clusters must be a list of phoneme lists")
    clusters = set()
    for cluster in value:
        if not isinstance(cluster, list) or len(cluster) < 2 or not all(isinstance(p, str) for p in cluster):
            raise VoiceConfigError(f"vowel_clusters entry {cluster!r} must list at least two phonemes")
        if "".join(cluster) not in id_map:
            raise VoiceConfigError(f"vowel cluster {''.join(cluster)!r} is not in phoneme_id_map")
        clusters.add(tuple(cluster))
    return frozenset(clusters)
