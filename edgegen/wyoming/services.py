"""What the server offers, found from what is installed, and the `info` event that describes it.

Voices are every installed voice in the model store (plus `--voice PATH` if it is a file),
loaded on first use and kept in a small LRU. Speech recognition and wake words are offered only
when their modules exist (`edgegen.audio.asr`, `edgegen.audio.wake`) and their models load; the
conversation agent only when an LLM is loaded. Names, languages, versions and attribution come
from the manifests (attribution: the homepage's owner and URL) and the voice configs.
"""
from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from wyoming.info import (
    AsrModel, AsrProgram, Attribution, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice,
    TtsVoiceSpeaker, WakeModel, WakeProgram,
)

from edgegen import __version__
from edgegen.audio.voice_config import VoiceConfig
from edgegen.errors import InvalidRequestError, ModelFormatError, ModelNotFoundError
from edgegen.store.inspect import read_voice_config
from edgegen.store.manifest import Manifest

log = logging.getLogger("edgegen.wyoming")

EDGEGEN_ATTRIBUTION = Attribution(name="edgegen", url="")


def manifest_attribution(m: Optional[Manifest]) -> Attribution:
    """Who made it and where it is from: the manifest's `attribution` and `homepage`; without an
    attribution, the owner in the homepage URL (github.com/NabuCasa/..., huggingface.co/Org/...)."""
    if m is None:
        return Attribution(name="", url="")
    name = getattr(m, "attribution", "")
    if not name and m.homepage:
        parts = [p for p in urlparse(m.homepage).path.split("/") if p]
        name = parts[0] if parts else urlparse(m.homepage).netloc
    return Attribution(name=name, url=m.homepage)


# --------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class VoiceEntry:
    """One installed voice as the `info` event lists it."""

    name: str  # store name (or file stem of a --voice path)
    model_path: Path
    language: str  # the config's language code, e.g. en_US
    speakers: tuple[str, ...]
    description: str
    version: Optional[str]
    attribution: Attribution
    aliases: tuple[str, ...] = ()  # the file stem, e.g. en_US-joe-medium

    def tts_voice(self) -> TtsVoice:
        return TtsVoice(
            name=self.name, attribution=self.attribution, installed=True, description=self.description,
            version=self.version, languages=[self.language] if self.language else [],
            speakers=[TtsVoiceSpeaker(name=s) for s in self.speakers] or None,
        )


def _voice_entry(name: str, model_path: Path, manifest: Optional[Manifest]) -> VoiceEntry:
    config_path = Path(str(model_path) + ".json")
    config = read_voice_config(config_path)  # language and quality
    speakers = VoiceConfig.from_file(config_path).speaker_id_map  # all of them, validated
    stem = model_path.name[: -len(".onnx")] if model_path.name.endswith(".onnx") else model_path.stem
    description = f"{stem} ({config['quality']})" if config["quality"] else stem
    return VoiceEntry(
        name=name, model_path=model_path, language=config["language"],
        speakers=tuple(sorted(speakers, key=speakers.get)) if config["speakers"] > 1 else (),
        description=description, version=manifest.version if manifest else None,
        attribution=manifest_attribution(manifest), aliases=(stem,) if stem != name else (),
    )


class VoiceLibrary:
    """The voices a client may ask for, loaded on first use; at most `max_loaded` stay loaded
    (least recently used goes first; a stream still using an evicted voice keeps it alive)."""

    def __init__(self, entries: list[VoiceEntry], default: str, *, threads: Optional[int] = None, max_loaded: int = 2,
                 loader: Any = None) -> None:
        if not entries:
            raise ModelNotFoundError("no voice installed; run `edgegen models pull joe` (or pass --voice PATH)")
        self.entries = entries
        self.threads = threads
        self.max_loaded = max(1, max_loaded)
        self._by_name = {alias: e for e in entries for alias in (e.name, *e.aliases)}
        if default not in self._by_name:
            raise ModelNotFoundError(f"no installed voice {default!r} (installed: {', '.join(e.name for e in entries)})")
        self.default = self._by_name[default]
        self._loaded: "collections.OrderedDict[str, Any]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._loader = loader

    @classmethod
    def from_store(cls, store: Any, default: Optional[str] = None, **options: Any) -> "VoiceLibrary":
        entries = []
        for row in store.list():
            if row.kind == "voice" and row.installed and row.path is not None:
                try:
                    entries.append(_voice_entry(row.name, row.path, store.manifest(row.name)))
                except ModelFormatError as exc:  # one broken voice must not take the others down
                    log.warning("voice %s not offered: %s", row.name, exc)
        if default and Path(default).suffix == ".onnx":
            path = Path(default).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(f"no such voice file: {path}")
            entry = _voice_entry(path.name[: -len(".onnx")], path.resolve(), None)
            entries = [entry] + [e for e in entries if e.name != entry.name]
            default = entry.name
        names = [e.name for e in entries]
        return cls(entries, default or ("joe" if "joe" in names else (names[0] if names else "")), **options)

    def find(self, name: Optional[str] = None, language: Optional[str] = None) -> VoiceEntry:
        """The voice a `synthesize` asks for: by name, else the first one of the language, else the default."""
        if name:
            entry = self._by_name.get(name)
            if entry is None:
                raise InvalidRequestError(f"no voice named {name!r} here (voices: {', '.join(e.name for e in self.entries)})",
                                          param="voice")
            return entry
        if language:
            wanted = language.replace("-", "_").lower()
            for e in [self.default] + self.entries:
                if e.language.lower() == wanted or e.language.lower().split("_")[0] == wanted:
                    return e
            raise InvalidRequestError(f"no voice for language {language!r}", param="voice")
        return self.default

    def load(self, entry: VoiceEntry) -> Any:
        """The loaded `Voice` (thread-safe; loading happens once per voice while it stays cached)."""
        with self._lock:
            voice = self._loaded.get(entry.name)
            if voice is None:
                if self._loader is not None:
                    voice = self._loader(entry)
                else:
                    from edgegen.audio.voice import load_voice
                    from edgegen.store import ModelStore

                    path = entry.model_path
                    if entry.version is not None:  # a store voice: checked against its manifest's sha256 once
                        path = ModelStore().resolve(entry.name, kind="voice")
                    voice = load_voice(path, threads=self.threads)
                self._loaded[entry.name] = voice
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(entry.name)
            return voice


# --------------------------------------------------------------------------- info


@dataclass
class Catalog:
    """Everything the server offers; `info()` is the answer to `describe`."""

    voices: Optional[VoiceLibrary] = None
    supports_streaming_tts: bool = True
    asr: Any = None  # edgegen ASR (has .info())
    wake_info: Optional[dict] = None  # WakeWordDetector.info(): version, phrases, trained_languages, attribution
    wake_words: tuple[str, ...] = ()
    llm_name: Optional[str] = None
    llm_manifest: Optional[Manifest] = None
    extra: dict = field(default_factory=dict)

    def info(self) -> Info:
        info = Info()
        if self.voices is not None:
            info.tts.append(TtsProgram(
                name="edgegen-tts", attribution=EDGEGEN_ATTRIBUTION, installed=True,
                description="Piper voices on edgegen (onnxruntime), clause by clause", version=__version__,
                voices=[e.tts_voice() for e in self.voices.entries],
                supports_synthesize_streaming=self.supports_streaming_tts,
            ))
        if self.asr is not None:
            meta = self.asr.info()
            info.asr.append(AsrProgram(
                name="edgegen-asr", attribution=EDGEGEN_ATTRIBUTION, installed=True,
                description="speech recognition on edgegen", version=__version__,
                models=[AsrModel(name=meta["name"], attribution=_attribution_of(meta), installed=True,
                                 description=meta.get("description") or meta["name"], version=meta.get("version"),
                                 languages=list(meta.get("languages") or []))],
            ))
        if self.wake_info is not None:
            meta = self.wake_info
            phrases = meta.get("phrases") or {}
            languages = meta.get("trained_languages") or {}
            info.wake.append(WakeProgram(
                name="edgegen-wake", attribution=EDGEGEN_ATTRIBUTION, installed=True,
                description="wake word detection on edgegen", version=__version__,
                models=[WakeModel(name=word, attribution=_attribution_of(meta), installed=True,
                                  description=phrases.get(word) or word.replace("_", " "), version=meta.get("version"),
                                  languages=list(languages.get(word) or meta.get("languages") or []),
                                  phrase=phrases.get(word) or word.replace("_", " "))
                        for word in self.wake_words],
            ))
        if self.llm_name is not None:
            m = self.llm_manifest
            info.handle.append(HandleProgram(
                name="edgegen-llm", attribution=EDGEGEN_ATTRIBUTION, installed=True,
                description="an on-device LLM as conversation agent", version=__version__,
                models=[HandleModel(name=self.llm_name, attribution=manifest_attribution(m), installed=True,
                                    description=(m.notes if m else "") or self.llm_name,
                                    version=m.version if m else None, languages=list(m.languages) if m else [])],
                supports_handled_streaming=True,
            ))
        return info


def _attribution_of(meta: dict) -> Attribution:
    """An ASR/wake `info()` dict's attribution: {"name", "url"}, or a plain string."""
    value = meta.get("attribution")
    if isinstance(value, dict):
        return Attribution(name=str(value.get("name", "")), url=str(value.get("url", "")))
    if isinstance(value, Attribution):
        return value
    return Attribution(name=str(value or ""), url="")
