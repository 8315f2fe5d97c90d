"""Wake word: Home Assistant's microWakeWord models through pymicro-wakeword (TFLite, bundled).

    detector = edgegen.load_wake_word(["okay_nabu"])
    for block in source:                      # int16 mono 16 kHz, any length
        for hit in detector.process(block):
            print(hit.name, "at", hit.timestamp)

Words are pymicro-wakeword's bundled models: okay_nabu, hey_jarvis, hey_mycroft, alexa (names as
the package spells them; "okay nabu" / "Okay Nabu" are accepted too). Audio is turned into
features 10 ms at a time by pymicro-features (the micro frontend the models were trained with);
each model keeps its own sliding window of probabilities and fires above its own cutoff
(from its JSON config). After a detection, a word is quiet for `refractory_s` so one utterance
fires once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgegen.errors import AudioFormatError, InvalidRequestError

SAMPLE_RATE = 16000
FEATURE_STEP_S = 0.010  # one feature frame per 10 ms of audio
DEFAULT_WORD = "okay_nabu"


def _package() -> Any:
    from edgegen.extras import require

    return require("pymicro_wakeword", "wake", "wake word detection")


def available_words() -> list[str]:
    """Names of the bundled wake words (from the package's model directory)."""
    pkg = _package()
    return sorted(m.value for m in pkg.Model)


def _normalise(word: str, known: Sequence[str]) -> str:
    key = str(word).strip().lower().replace(" ", "_").replace("-", "_").replace("ok_", "okay_")
    if key not in known:
        raise InvalidRequestError(f"unknown wake word {word!r}; bundled words: {', '.join(known)}", param="wake_word")
    return key


@dataclass(frozen=True)
class WakeDetection:
    name: str  # the word's name, e.g. "okay_nabu"
    timestamp: float  # seconds of audio since the detector's last reset, at the detection


class WakeWordDetector:
    """One or more bundled wake words listening to the same audio."""

    def __init__(self, words: Optional[list[str]] = None, *, refractory_s: float = 2.0) -> None:
        pkg = _package()
        known = available_words()
        chosen = [DEFAULT_WORD] if not words else list(dict.fromkeys(_normalise(w, known) for w in words))
        self._pkg = pkg
        self.words = known  # every word this detector could load
        self.active = chosen  # the words it listens for
        self.refractory_s = refractory_s
        self._models = {w: pkg.MicroWakeWord.from_builtin(pkg.Model(w)) for w in chosen}
        self._configs = {w: self._read_config(w) for w in chosen}
        self._features = pkg.MicroWakeWordFeatures()
        self._frames = 0  # feature frames since reset
        self._quiet_until: dict[str, int] = {}

    @staticmethod
    def _read_config(word: str) -> dict[str, Any]:
        import pymicro_wakeword

        path = Path(pymicro_wakeword.__file__).parent / "models" / f"{word}.json"
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}

    def reset(self) -> None:
        for model in self._models.values():
            model.reset()
        self._features.reset()
        self._frames = 0
        self._quiet_until = {}

    def process(self, samples: np.ndarray) -> list[WakeDetection]:
        """int16 mono 16 kHz samples (any length; buffered) -> detections in this block."""
        a = np.asarray(samples)
        if a.dtype != np.int16:
            if a.dtype.kind == "f":
                a = (np.clip(a, -1.0, 1.0) * 32767.0).astype(np.int16)
            else:
                raise AudioFormatError(f"wake word audio must be int16 (or float in [-1, 1]), got {a.dtype}")
        hits = []
        for features in self._features.process_streaming(a.reshape(-1).astype("<i2").tobytes()):
            self._frames += 1
            for word, model in self._models.items():
                if model.process_streaming(features) and self._frames >= self._quiet_until.get(word, 0):
                    self._quiet_until[word] = self._frames + int(self.refractory_s / FEATURE_STEP_S)
                    hits.append(WakeDetection(word, round(self._frames * FEATURE_STEP_S, 3)))
        return hits

    def info(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "words": self.words, "active": self.active, "version": version("pymicro-wakeword"),
            "phrases": {w: c.get("wake_word", w) for w, c in self._configs.items()},
            "trained_languages": {w: c.get("trained_languages", []) for w, c in self._configs.items()},
            "attribution": "microWakeWord models by Kevin Ahrendt, via pymicro-wakeword (Apache-2.0)",
        }

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models = {}


def load_wake_word(words: Optional[list[str]] = None, *, refractory_s: float = 2.0) -> WakeWordDetector:
    """A detector for `words` (default ["okay_nabu"]); any of `available_words()`."""
    if words is not None and (isinstance(words, str) or not all(isinstance(w, str) for w in words)):
        raise InvalidRequestError("words must be a list of wake word names", param="words")
    return WakeWordDetector(words, refractory_s=refractory_s)
