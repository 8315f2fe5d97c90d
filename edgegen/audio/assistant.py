"""The conversation loop: wake (or push-to-talk) -> listen -> transcribe -> think -> speak, with barge-in.

    assistant = edgegen.Assistant(llm, voice, asr, wake_words=["okay_nabu"])
    for event in assistant.run(MicrophoneSource()):
        print(event)

One thread (the caller's) listens: every 32 ms block goes through the wake word detector (when
waiting for one) and the Silero endpointer. A reply speaks on its own thread (audio/reply.py) while
listening goes on, so the person can interrupt it.

Barge-in. While the assistant speaks, the endpointer runs with a higher threshold
(`barge_in_threshold`, default 0.8 instead of 0.5) and needs `barge_in_min_speech_ms` (160 ms)
of speech; in addition 60 % of the blocks of that speech must pass an echo gate: the
microphone's RMS must exceed `echo_ratio` (0.2) times the RMS of what the speaker played in the
last 300 ms. Echo of our own voice that reaches the microphone 14 dB or more below the playback
level therefore never passes, while a person talking at the device (RMS 0.02-0.2 at the
microphone against a playback RMS of ~0.1) does. (This is a playback-aware gate, not echo cancellation;
with a loud speaker next to the microphone, raise `echo_ratio` or use a headset, or turn barge-in
off.) When speech passes both: the player is aborted at once (on the listener's thread, so
within one block: ≤ 32 ms plus PortAudio's stop), the generation is cancelled, and the
assistant's message in the history is cut to the clauses that finished playing; the LLM's KV
cache is truncated to the prompt plus the generated tokens of those clauses, so the next turn
continues from exactly what the person heard. The interrupting speech is the next turn.

Transcribing while the turn ends. The endpointer waits `min_silence_ms` (600 ms) of silence
before it calls a turn over; after `vad.pause_ms` (160 ms) of it, it hands out the audio the turn
will have if the silence lasts, and the recogniser starts on it on a worker thread. When the turn
does end with that same audio, its transcript is (or is about to be) ready; when the person goes
on speaking, that transcript is dropped and the finished turn is transcribed as usual. The
transcript is the same either way (the same samples, the same settings). While that transcript
runs, the blocks arriving are held back and run through the endpointer once it is done: on a
2-core board the recogniser needs both cores, and a VAD window every 32 ms on one of them stalls
its threads at every synchronisation (12 % longer transcriptions, measured). Nothing is lost by
waiting: the turn's end cannot be answered before its transcript exists, and nothing is being
said back that could be interrupted.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from edgegen.audio.reply import Reply, ReplyResult
from edgegen.audio.vad import SAMPLE_RATE, WINDOW, Endpointer, SpeechEnd, SpeechPause, SpeechStart, VADConfig
from edgegen.errors import InvalidRequestError
from edgegen.fit import release_free_heap, return_large_buffers_to_system

MODES = ("wake", "always", "push_to_talk")
GATE_FRACTION = 0.6  # of the barge-in window's blocks must be louder than the echo bound (speech has dips)
DEFAULT_SYSTEM_PROMPT = ("You are a helpful voice assistant on a small device. Answer in one or two short "
                         "spoken sentences, without lists or markup.")


@dataclass(frozen=True)
class AssistantConfig:
    mode: str = "always"  # "wake": a wake word starts each exchange; "always"; "push_to_talk": call push_to_talk()
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    follow_up_s: float = 6.0  # in wake/push-to-talk mode, listen this long after a reply without a new wake
    listen_timeout_s: float = 8.0  # after a wake, give up if nobody speaks within this
    vad: VADConfig = field(default_factory=VADConfig)
    barge_in: bool = True
    barge_in_threshold: float = 0.8
    barge_in_min_speech_ms: int = 160
    barge_in_lookback_s: float = 1.0  # the interrupting turn starts this much before the barge-in decision
    echo_ratio: float = 0.2
    noise_floor: float = 0.003  # mic RMS below this is never speech (for the echo gate)
    lead_s: float = 0.2  # reply audio written ahead of the speaker
    # Longer clauses are spoken in parts cut at words (Voice.stream's max_phonemes): the voice's
    # buffers grow ~20 MiB per second of joe-medium audio, and past ~4 s (72 phonemes) one run
    # would take the loop over 512 MiB on top of the LLM and the recogniser. None: no limit.
    max_clause_phonemes: Optional[int] = 72
    max_history_turns: int = 8  # user+assistant pairs kept in the prompt
    sampling: dict[str, Any] = field(default_factory=lambda: {"max_tokens": 96, "temperature": 0.0})
    language: Optional[str] = None

    def validate(self) -> "AssistantConfig":
        if self.mode not in MODES:
            raise InvalidRequestError(f"mode must be one of {MODES}, got {self.mode!r}", param="mode")
        if not 0.0 < self.barge_in_threshold < 1.0 or self.echo_ratio < 0 or self.lead_s < 0.02:
            raise InvalidRequestError("need 0 < barge_in_threshold < 1, echo_ratio >= 0, lead_s >= 0.02")
        self.vad.validate()
        return self


@dataclass(frozen=True)
class AssistantEvent:
    """kind: wake, listening, speech_start, heard, reply, barge_in, idle. `text` for heard/reply."""

    kind: str
    time: float  # seconds of input audio since run() began
    text: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Assistant:
    """LLM + voice + recogniser (+ VAD, + wake word) in one loop. Not thread-safe: one run() at a time."""

    def __init__(self, llm: Any, voice: Any, asr: Any, *, vad: Any = None, wake_words: Optional[list[str]] = None,
                 wake: Any = None, config: Optional[AssistantConfig] = None, output_device: Union[int, str, None] = None,
                 player_factory: Optional[Callable[[int], Any]] = None, **settings: Any) -> None:
        if config is None:
            if wake_words and "mode" not in settings:
                settings["mode"] = "wake"
            config = AssistantConfig(**settings)
        elif settings:
            raise InvalidRequestError("pass either config or settings, not both")
        self.config = config.validate()
        self.llm, self.voice, self.asr = llm, voice, asr
        if vad is None:
            from edgegen.audio.vad import load_vad

            vad = load_vad()
        self.vad = vad
        self.wake = wake
        if self.wake is None and (wake_words or self.config.mode == "wake"):
            from edgegen.audio.wake import load_wake_word

            self.wake = load_wake_word(wake_words)
        if player_factory is None:
            from edgegen.audio.playback import Player

            player_factory = lambda rate: Player(rate, output_device)  # noqa: E731
        self.player_factory = player_factory
        return_large_buffers_to_system()  # the loop's per-turn buffers (edgegen.fit)
        self._release_memory()
        self.history: list[dict[str, str]] = []
        self.replies: list[ReplyResult] = []  # every finished reply, for callers and tests
        self.reply: Optional[Reply] = None  # the one speaking now
        self._push = threading.Event()
        self._stop = threading.Event()
        self._user_text = ""
        self._pending_events: list[AssistantEvent] = []
        self._early: Optional[tuple[np.ndarray, Any]] = None  # (audio, future) of a transcript started at a pause
        self._asr_pool: Any = None

    # ---- control from other threads
    def push_to_talk(self) -> None:
        """Start listening for one turn now (push-to-talk mode; also skips the wake word in wake mode)."""
        self._push.set()

    def stop(self) -> None:
        """End run() after the current block (a reply in progress is interrupted)."""
        self._stop.set()

    @property
    def speaking(self) -> bool:
        return self.reply is not None and self.reply.speaking

    # ---- the loop
    def messages(self, user_text: str) -> list[dict[str, str]]:
        # Past the limit the window starts half a window later at a time, not a turn later: each
        # start is a new prompt prefix whose history the LLM evaluates afresh (~0.5 s for 8 turns
        # on 2 cores), so it moves once every max/2 turns and every other turn reuses the cache.
        pairs, limit = len(self.history) // 2, self.config.max_history_turns
        step = max(1, limit // 2)
        start = 0 if pairs <= limit else ((pairs - limit - 1) // step + 1) * step
        keep = self.history[2 * start:] if limit > 0 else []
        return [{"role": "system", "content": self.config.system_prompt}, *keep, {"role": "user", "content": user_text}]

    def run(self, source: Iterable[np.ndarray], *, max_turns: Optional[int] = None) -> Iterator[AssistantEvent]:
        """Listen to `source` (float32 16 kHz blocks) and converse; yields AssistantEvents. Ends when
        the source ends (after the last reply has been spoken), after `max_turns` replies, or on stop()."""
        cfg = self.config
        self._stop.clear()
        if self.wake is not None:
            self.wake.reset()
        endpointer = Endpointer(self.vad, cfg.vad)
        listening = cfg.mode == "always"  # the endpointer hears turns (always: yes; else after a wake)
        listen_until = float("inf")
        samples_in = turns = 0
        gate: collections.deque[bool] = collections.deque(maxlen=256)  # per block: passed the echo gate
        normal_frames = endpointer.min_speech_frames
        barge_frames = max(1, round(cfg.barge_in_min_speech_ms * SAMPLE_RATE / 1000 / WINDOW))
        backlog: list[tuple[np.ndarray, float]] = []

        def blocks() -> Iterator[tuple[np.ndarray, float]]:
            """The source's blocks with their arrival times; held back while a transcript started
            at a pause runs (see the module's notes), then handed out in order."""
            for block in source:
                arrived = time.perf_counter()
                if (listening and not self._stop.is_set() and self._early is not None
                        and not self._early[1].done() and not self.speaking):
                    backlog.append((block, arrived))
                    continue
                yield from backlog
                backlog.clear()
                yield block, arrived
            yield from backlog

        try:
            for block, arrived in blocks():
                if self._stop.is_set():
                    break
                block = np.asarray(block, dtype=np.float32).reshape(-1)
                samples_in += len(block)
                now = samples_in / SAMPLE_RATE
                for event in self._finish_reply(endpointer, wait=False):
                    yield event
                    if cfg.mode != "always" and cfg.follow_up_s > 0:  # "always listening after the last reply"
                        listening, listen_until = True, now + cfg.follow_up_s
                if max_turns is not None and turns >= max_turns and self.reply is None:
                    break
                speaking = self.speaking
                if not listening and not speaking:
                    if self._push.is_set() or (self.wake is not None and self._wake(block)):
                        self._push.clear()
                        listening, listen_until = True, now + cfg.listen_timeout_s
                        endpointer.reset()
                        yield AssistantEvent("wake", now)
                    continue
                endpointer.threshold = cfg.barge_in_threshold if speaking else cfg.vad.threshold
                endpointer.min_speech_frames = barge_frames if speaking else normal_frames
                gate.append(not speaking or self._passes_echo_gate(block))
                for event in endpointer.process(block):
                    if isinstance(event, SpeechStart):
                        if speaking:
                            recent = list(gate)[-max(1, barge_frames * WINDOW // max(len(block), 1)):]
                            if not cfg.barge_in or sum(recent) < GATE_FRACTION * len(recent):
                                endpointer.reset()  # our own voice, or too short: not a barge-in
                                continue
                            self.reply.interrupt(time.perf_counter())
                            endpointer.include_lookback(cfg.barge_in_lookback_s)
                            yield AssistantEvent("barge_in", now)
                            yield from self._finish_reply(endpointer, wait=True)
                        listen_until = float("inf")
                        yield AssistantEvent("speech_start", event.time)
                    elif isinstance(event, SpeechPause):
                        if not speaking:
                            self._transcribe_early(event.audio)
                    elif isinstance(event, SpeechEnd):
                        ended = arrived  # when the turn's last block came in, held back or not
                        yield from self._finish_reply(endpointer, wait=True)
                        turns += self._answer(event.audio, now, ended)
                        yield from self._pending_events
                        if cfg.mode != "always":
                            listening = False
                if listening and not endpointer.in_speech and not self.speaking and now > listen_until:
                    listening = False
                    yield AssistantEvent("idle", now)
            yield from self._finish_reply(endpointer, wait=True)
        finally:
            self.close()

    def _transcribe_early(self, audio: np.ndarray) -> None:
        """Start transcribing a turn that may be over (a SpeechPause) on the worker thread. One at a
        time: while an earlier guess still runs, this pause goes without one."""
        if self._early is not None and not self._early[1].done():
            return
        if self._asr_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._asr_pool = ThreadPoolExecutor(1, thread_name_prefix="edgegen-asr")
        self._early = (audio, self._asr_pool.submit(self._recognise, audio))

    def _transcript(self, audio: np.ndarray) -> tuple[Any, bool]:
        """The turn's transcript: the one started at its pause when that had the same audio."""
        early, self._early = self._early, None
        if early is not None:
            same = len(early[0]) == len(audio) and np.array_equal(early[0], audio)
            if same:
                return early[1].result(), True
            early[1].result()  # the recogniser is busy with a stale guess until it finishes
        return self._recognise(audio), False

    def _recognise(self, audio: np.ndarray) -> Any:
        # No timestamps: the loop never uses segment times, and decoding them costs ~50 ms a turn.
        return self.asr.transcribe_samples(audio, language=self.config.language, without_timestamps=True)

    def _answer(self, audio: np.ndarray, now: float, ended: Optional[float] = None) -> int:
        """Transcribe a finished turn and start speaking the reply; 1 when a reply started."""
        ended = time.perf_counter() if ended is None else ended
        transcript, early = self._transcript(audio)
        self._pending_events = [AssistantEvent("heard", now, transcript.text, {
            "asr_s": transcript.seconds, "audio_s": transcript.duration, "early": early,
            # what the person waits for: the end of the turn, then the transcript (less when it
            # was started at the pause)
            "end_of_speech_wait_s": self.config.vad.min_silence_ms / 1000,
            "asr_wait_s": time.perf_counter() - ended})]
        text = transcript.text.strip()
        if not text:
            return 0
        self._user_text = text
        self.reply = Reply(self.llm, self.voice, self.messages(text), player_factory=self.player_factory,
                           sampling=dict(self.config.sampling), lead_s=self.config.lead_s,
                           max_phonemes=self.config.max_clause_phonemes)
        return 1

    def warm_up(self) -> None:
        """Run each part once so the first question is answered as fast as the later ones (~1 s,
        once): the LLM evaluates the system prompt (kept, so every turn resumes after it), the
        voice, the recogniser and the VAD make their first allocations and thread pools; then the
        memory that took goes back (`_release_memory`)."""
        self.llm.chat(self.messages("Hello."), max_tokens=1, temperature=0.0)
        for _ in self.voice.stream("Hello."):
            pass
        self._recognise(np.zeros(SAMPLE_RATE, np.float32))
        self.vad.process(np.zeros(WINDOW, np.float32))
        self.vad.reset()
        self._release_memory()

    def _release_memory(self) -> None:
        """Between turns, before the recogniser's peak: the voice's arena and the C heap's free
        pages go back to the system (~10 ms)."""
        release = getattr(self.voice, "release_memory", None)
        if release is not None:
            release()
        release_free_heap()

    def _wake(self, block: np.ndarray) -> bool:
        pcm = (np.clip(block, -1.0, 1.0) * 32767.0).astype(np.int16)
        return bool(self.wake.process(pcm))

    def _passes_echo_gate(self, block: np.ndarray) -> bool:
        mic = float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) if block.size else 0.0
        played = self.reply.recent_playback_rms() if self.reply is not None else 0.0
        return mic > max(self.config.noise_floor, self.config.echo_ratio * played)

    def _finish_reply(self, endpointer: Endpointer, wait: bool) -> Iterator[AssistantEvent]:
        """When the reply has ended (or `wait`: once it has), record it: history cut to what was
        heard, KV truncated to match on an interruption."""
        reply = self.reply
        if reply is None or (reply.speaking and not wait):
            return
        result = reply.result(timeout=None)
        self.reply = None
        self._release_memory()
        self.replies.append(result)
        self.history += [{"role": "user", "content": self._user_text},
                         {"role": "assistant", "content": result.spoken_text}]
        if result.interrupted:
            truncate = getattr(self.llm.backend, "truncate_cache", None)
            if truncate is not None:  # keep the KV of the prompt and of the clauses that were heard
                truncate(len(result.prompt_ids) + result.kept_tokens)
        t = result.timings
        yield AssistantEvent("reply", endpointer.time, result.spoken_text, {
            "interrupted": result.interrupted, "full_text": result.full_text, "stop_latency_s": result.stop_latency,
            "llm_first_token_s": t.first_token, "first_audio_s": t.first_audio,
            "first_clause_synthesis_s": t.first_clause_synthesis,
        })

    def close(self) -> None:
        if self.reply is not None:
            self.reply.interrupt()
            self.reply.result()
            self.reply = None
        if self._asr_pool is not None:
            self._asr_pool.shutdown(wait=True)
            self._asr_pool = None
        self._early = None


# ---- loading the whole set under one memory budget -------------------------------------------

def estimate_assistant(llm: str = "smollm2", voice: str = "joe", asr: str = "whisper-tiny.en", *, n_ctx: int = 2048,
                       kv_type: str = "f16", wake_words: int = 0, vad: str = "silero-vad", voice_lanes: bool = False) -> Any:
    """The fit check's estimate for the whole loop: LLM weights + KV + scratch, the voice's session(s),
    the recogniser, the VAD and the wake words (edgegen.fit), from the files, before loading any."""
    from edgegen.audio.asr import asr_model_dir
    from edgegen.audio.voice import resolve_voice_files
    from edgegen.fit import estimate_for_gguf, estimate_sessions
    from edgegen.llm import resolve_model_path
    from edgegen.store import resolve_model

    voice_path, _ = resolve_voice_files(voice)
    sessions = estimate_sessions(voice_paths=(voice_path,), voice_lanes=voice_lanes, asr_dirs=(asr_model_dir(asr)[0],),
                                 vad_paths=(resolve_model(vad, "vad"),), wake_words=wake_words)
    return estimate_for_gguf(resolve_model_path(llm), n_ctx, kv_type) + sessions


def check_assistant_fit(llm: str = "smollm2", voice: str = "joe", asr: str = "whisper-tiny.en", *, n_ctx: int = 2048,
                        kv_type: str = "f16", wake_words: int = 0, memory_budget: Union[None, int, str] = None) -> Any:
    """The estimate when the whole set fits `memory_budget`; MemoryBudgetError with the numbers if not."""
    from edgegen.fit import check_fit

    estimate = estimate_assistant(llm, voice, asr, n_ctx=n_ctx, kv_type=kv_type, wake_words=wake_words)
    return check_fit(estimate, memory_budget, what="the assistant (LLM + voice + speech recognition + VAD"
                                                   + (" + wake word)" if wake_words else ")"))


def load_assistant(llm: str = "smollm2", voice: str = "joe", asr: str = "whisper-tiny.en", *,
                   wake_words: Optional[list[str]] = None, threads: Optional[int] = None, n_ctx: int = 2048,
                   kv_type: str = "f16", memory_budget: Union[None, int, str] = None, warm_up: bool = True,
                   **settings: Any) -> Assistant:
    """Check that the whole set fits `memory_budget` (MemoryBudgetError with the numbers if not),
    then load it: the recogniser first (its load peaks ~100 MiB above its resident size, so it
    peaks while nothing else is resident), then the LLM, the voice, the VAD and the wake words;
    then (`warm_up`) run each once, so the first question is answered as fast as the rest."""
    import edgegen
    from edgegen.audio.vad import load_vad

    return_large_buffers_to_system()  # before anything is loaded: see edgegen.fit
    n_words = len(wake_words) if wake_words else (1 if settings.get("mode") == "wake" else 0)
    check_assistant_fit(llm, voice, asr, n_ctx=n_ctx, kv_type=kv_type, wake_words=n_words, memory_budget=memory_budget)
    recogniser = edgegen.load_asr(asr, threads=threads, beam_size=settings.pop("beam_size", 1))
    model = edgegen.load(llm, n_ctx=n_ctx, n_threads=threads, kv_type=kv_type, memory_budget=memory_budget)
    speaker = edgegen.load_voice(voice, threads=threads, parallel_units=False)
    assistant = Assistant(model, speaker, recogniser, vad=load_vad(), wake_words=wake_words, **settings)
    if warm_up:
        assistant.warm_up()
    return assistant
