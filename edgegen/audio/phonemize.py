"""Text -> phonemes -> ids, exactly as piper-tts 1.8.0 does it, but kept clause by clause.

Piper (piper/voice.py `PiperVoice.phonemize`, piper/phonemize_espeak.py) runs espeak-ng through
its own bridge (`piper.espeakbridge`, espeak-ng linked in, data shipped in the wheel) and joins
espeak's clauses into sentences. We call the same bridge, with the same data and under the same
lock (espeak-ng is one global C state per process), and apply the same post-processing, but keep
the clause boundaries so audio can start after the first clause instead of the first sentence.
Joining a sentence's clauses gives Piper's phonemes for that sentence exactly.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from edgegen.audio.clauses import split_clauses
from edgegen.audio.voice_config import BOS, EOS, PAD, VoiceConfig
from edgegen.errors import EdgegenError

_LOGGER = logging.getLogger(__name__)
_PHONEME_BLOCK = re.compile(r"(\[\[.*?\]\])")  # piper's inline raw phonemes: [[ həlˈoʊ ]]
_LANG_SWITCH = re.compile(r"\([^)]+\)")  # espeak's (fr) ... (en) language-switch flags


@dataclass
class Clause:
    phonemes: list[str]  # NFD code points (and merged vowel clusters), punctuation kept
    text: str  # the source text it speaks (best effort, see `_label_clauses`)
    ends_sentence: bool


# --------------------------------------------------------------------------- espeak bridge


def _espeak_clauses(voice: str, text: str) -> list[tuple[str, str, bool]]:
    """(phonemes, terminator, end_of_sentence) per clause from piper's espeak bridge."""
    from edgegen.extras import needs_extra

    with needs_extra("voice", "Piper voices"):  # piper-tts's espeak-ng bridge
        import piper.voice as piper_voice
        from piper import espeakbridge
        from piper.phonemize_espeak import ESPEAK_DATA_DIR, EspeakPhonemizer
    # Share piper's lock and its one-time initialisation, so edgegen and piper can run in one process.
    with piper_voice._ESPEAK_PHONEMIZER_LOCK:
        if piper_voice._ESPEAK_PHONEMIZER is None:
            piper_voice._ESPEAK_PHONEMIZER = EspeakPhonemizer(ESPEAK_DATA_DIR)
        try:
            espeakbridge.set_voice(voice)
        except Exception as exc:  # the bridge raises RuntimeError for an unknown voice
            raise EdgegenError(f"espeak-ng has no voice {voice!r}: {exc}") from exc
        return espeakbridge.get_phonemes(text)


def _merge_vowel_clusters(phones: Sequence[str], clusters: frozenset[tuple[str, ...]]) -> list[str]:
    """piper.phonemize_espeak._merge_known_vowel_clusters: longest known cluster first."""
    max_len = max(len(k) for k in clusters)
    out: list[str] = []
    i = 0
    while i < len(phones):
        match = None
        for n in range(min(max_len, len(phones) - i), 1, -1):
            candidate = tuple(phones[i:i + n])
            if candidate in clusters:
                match = candidate
                break
        if match is not None:
            out.append("".join(match))
            i += len(match)
        else:
            out.append(phones[i])
            i += 1
    return out


def _espeak_sentences(text: str, config: VoiceConfig) -> list[list[Clause]]:
    """piper.phonemize_espeak.EspeakPhonemizer.phonemize, with the clauses kept apart."""
    sentences: list[list[Clause]] = []
    current: list[Clause] = []
    for phonemes_str, terminator, end_of_sentence in _espeak_clauses(config.espeak_voice, text):
        phonemes_str = _LANG_SWITCH.sub("", phonemes_str)
        phonemes_str += terminator  # punctuation is kept, it shapes the prosody
        if terminator in (",", ":", ";"):
            phonemes_str += " "
        phonemes = list(unicodedata.normalize("NFD", phonemes_str))
        if config.vowel_clusters:
            # Piper merges over the whole sentence; clauses end in punctuation, so per clause is the same.
            phonemes = _merge_vowel_clusters(phonemes, config.vowel_clusters)
        current.append(Clause(phonemes, "", end_of_sentence))
        if end_of_sentence:
            sentences.append(current)
            current = []
    if current:
        current[-1].ends_sentence = True
        sentences.append(current)
    return sentences


def _label_clauses(text: str, sentences: list[list[Clause]]) -> None:
    """Attach source text to espeak's clauses.

    espeak does not say which characters each clause came from, so we cut the text with the
    same rules (`split_clauses`); when the counts agree the pieces map one to one, otherwise
    the whole text labels the first clause (a label only; audio and ids are unaffected).
    """
    clauses = [c for s in sentences for c in s]
    if not clauses:
        return
    pieces = split_clauses(text)
    if len(pieces) == len(clauses):
        for clause, piece in zip(clauses, pieces):
            clause.text = piece.strip()
    else:
        clauses[0].text = text.strip()


# --------------------------------------------------------------------------- public


def phonemize(text: str, config: VoiceConfig) -> list[list[Clause]]:
    """Sentences of clauses; `"".join` of a sentence's clause phonemes is Piper's sentence.

    Mirrors `PiperVoice.phonemize`, including `[[ raw phonemes ]]` blocks glued to the
    sentence around them.
    """
    if config.phoneme_type == "text":
        return [[Clause(list(unicodedata.normalize("NFD", text)), text.strip(), True)]]

    sentences: list[list[Clause]] = []
    parts = _PHONEME_BLOCK.split(text)
    prev_raw = False
    for i, part in enumerate(parts):
        if part.startswith("[["):
            prev_raw = True
            if not sentences:
                sentences.append([])
            raw: list[str] = []
            if i > 0 and parts[i - 1].endswith(" "):
                raw.append(" ")
            raw.extend(part[2:-2].strip())
            if i < len(parts) - 1 and parts[i + 1].startswith(" "):
                raw.append(" ")
            if sentences[-1]:  # glue to the clause before: a raw block has no punctuation of its own
                sentences[-1][-1].phonemes.extend(raw)
                sentences[-1][-1].text += part
            else:
                sentences[-1].append(Clause(raw, part, True))
            continue

        part_sentences = _espeak_sentences(part, config)
        _label_clauses(part, part_sentences)
        if prev_raw and part_sentences:
            # Piper appends the first sentence after raw phonemes to the current sentence.
            first = part_sentences.pop(0)
            last = sentences[-1][-1] if sentences[-1] else None
            if last is not None and first:
                head = first.pop(0)
                last.phonemes.extend(head.phonemes)
                last.text = (last.text + " " + head.text).strip()
                last.ends_sentence = head.ends_sentence
            sentences[-1].extend(first)
        sentences.extend(part_sentences)
        prev_raw = False

    if sentences and not any(c.phonemes for c in sentences[-1]):
        sentences.pop()  # piper drops a trailing empty sentence
    return sentences


def phonemes_to_ids(phonemes: Iterable[str], id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """piper.phoneme_ids.phonemes_to_ids: BOS, PAD, then each phoneme's ids + PAD, then EOS.

    Phonemes missing from the map are skipped, as Piper does (logged at debug level).
    """
    ids: list[int] = [*id_map[BOS], *id_map[PAD]]
    pad = id_map[PAD]
    for phoneme in phonemes:
        mapped: Optional[Sequence[int]] = id_map.get(phoneme)
        if mapped is None:
            _LOGGER.debug("phoneme %r is not in the voice's id map; skipped", phoneme)
            continue
        ids.extend(mapped)
        ids.extend(pad)
    ids.extend(id_map[EOS])
    return ids
