"""`edgegen chat`: an interactive chat REPL with streaming replies and multi-turn history.

Line editing and input history come from the stdlib `readline` (when the platform has it).
Ctrl-C stops the reply being generated (the partial reply stays in the history, as shown);
at the prompt it just clears the line. Ctrl-D (or /quit) leaves.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Iterator, Optional

HELP = "interactive chat REPL with streaming replies (/help lists the commands)"
PROMPT = ">>> "
MAX_LOAD_BYTES = 8 << 20
ROLES = ("system", "user", "assistant")
COMMANDS = """commands:
  /system TEXT    set the system prompt (/system alone clears it)
  /reset          forget the conversation (keeps the system prompt)
  /save FILE      write the conversation as JSON messages
  /load FILE      read a conversation written by /save (a JSON list of {role, content})
  /stats          speed, time to first token and context used by the last reply
  /voice on|off   speak replies with the Piper voice
  /help           this list;  /quit or Ctrl-D leaves;  Ctrl-C stops a reply"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgegen.cli.common import add_model_arguments, add_sampling_arguments
    from edgegen.router import add_route_arguments

    parser.add_argument("--system", default=None, help="initial system prompt")
    parser.add_argument("--voice", dest="voice_name", default=None, help="Piper voice for /voice on (default: joe)")
    add_model_arguments(parser)
    add_sampling_arguments(parser, max_tokens=512)
    add_route_arguments(parser)


def load_messages(path: str) -> list[dict[str, str]]:
    """Messages from a /save file, checked: a JSON list of {role: system|user|assistant, content: str}."""
    from edgegen.types import validate_messages
    from edgegen.errors import InvalidRequestError

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LOAD_BYTES + 1)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_LOAD_BYTES:
        raise InvalidRequestError(f"{path} is larger than {MAX_LOAD_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError(f"{path} is not UTF-8 JSON: {exc}") from None
    if isinstance(data, list) and not data:
        return []
    messages = validate_messages(data)  # raises InvalidRequestError with the index of a bad entry
    out = []
    for i, m in enumerate(messages):
        if m["role"] not in ROLES:
            raise InvalidRequestError(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m['role']!r}")
        if m["role"] == "system" and i != 0:
            raise InvalidRequestError(f"messages[{i}]: a system message may only come first")
        out.append({"role": m["role"], "content": m["content"]})
    return out


class ChatREPL:
    def __init__(self, router: Any, params: Any, *, system: Optional[str] = None, voice_name: Optional[str] = None,
                 out: Any = None) -> None:
        self.router = router
        self.params = params
        self.system = system
        self.history: list[dict[str, str]] = []  # user/assistant turns (the system prompt is kept apart)
        self.voice_name = voice_name
        self.voice: Any = None
        self.speak = False
        self.out = out or sys.stdout
        self.last: Optional[dict[str, Any]] = None  # stats of the last reply

    # ---- output ---------------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def messages(self) -> list[dict[str, str]]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.history

    # ---- one turn -------------------------------------------------------------------------------
    def reply(self, text: str) -> None:
        self.history.append({"role": "user", "content": text})
        parts: list[str] = []
        timing: dict[str, Any] = {"start": time.perf_counter(), "first": None, "last_chunk": None, "tokens": 0,
                                  "sent": self.messages()}
        stream = None
        interrupted = False
        try:
            stream = self.router.chat(self.messages(), self.params, stream=True)
            printed = self._print_deltas(stream, parts, timing)
            if self.speak:
                self._speak(printed, stream.cancel)
            else:
                for _ in printed:
                    pass
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if stream is not None:
                stream.cancel()
                try:
                    stream.close()
                except ValueError:  # still being iterated by a speech thread that missed its join
                    pass
        if parts or not interrupted:
            self.say()
        if interrupted:
            self.say("[interrupted]")
        reply = "".join(parts)
        if reply:
            self.history.append({"role": "assistant", "content": reply})
        else:
            self.history.pop()  # nothing was said: the turn did not happen
        self._record(timing, interrupted)

    def _print_deltas(self, stream: Any, parts: list[str], timing: dict[str, Any]) -> Iterator[Any]:
        for chunk in stream:
            if chunk.text:
                if timing["first"] is None:
                    timing["first"] = time.perf_counter()
                parts.append(chunk.text)
                self.out.write(chunk.text)
                self.out.flush()
            timing["last_chunk"] = chunk
            timing["tokens"] += len(chunk.token_ids)
            yield chunk

    def _speak(self, deltas: Iterator[Any], cancel: Any) -> None:
        """Speak while printing: the LLM runs on the speech producer thread, playback here."""
        from edgegen.audio.playback import play
        from edgegen.audio.speak import speak_stream
        from edgegen.errors import AudioDeviceError

        speech = speak_stream(deltas, self.voice)
        try:
            play(speech)
        except AudioDeviceError as exc:  # the device went away mid-reply: stop, say why, go on
            self.speak = False
            self.say(f"\n[voice off: {exc}]")
            cancel()
        except BaseException:
            cancel()  # interrupted: stop generating too
            raise
        finally:
            speech.close(timeout=10.0)

    def _record(self, timing: dict[str, Any], interrupted: bool = False) -> None:
        last = timing["last_chunk"]
        end = time.perf_counter()
        usage = getattr(last, "usage", None)
        route = getattr(last, "route", None)
        tokens = usage.completion_tokens if usage else None
        context = usage.total_tokens if usage else None
        if usage is None and route == "local":  # interrupted before the final chunk and its usage
            tokens = timing["tokens"]
            context = self._prompt_tokens(timing["sent"])
            context = None if context is None else context + tokens
        self.last = {
            "seconds": end - timing["start"],
            "ttft": None if timing["first"] is None else timing["first"] - timing["start"],
            "tokens": tokens,
            "context": context,
            "route": route,
            "interrupted": interrupted,
        }

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> Optional[int]:
        try:
            return len(self.router.local_llm().prepare_chat(messages).ids)
        except Exception:  # stats are best effort: never fail a /stats over them
            return None

    def stats_text(self) -> str:
        if self.last is None:
            return "no reply yet"
        s = self.last
        parts = []
        if s["tokens"] is not None:
            rate = s["tokens"] / s["seconds"] if s["seconds"] > 0 else 0.0
            parts.append(f"{s['tokens']} tokens in {s['seconds']:.2f} s ({rate:.1f} tok/s)")
        if s["ttft"] is not None:
            parts.append(f"first token after {s['ttft'] * 1000:.0f} ms")
        if s["context"] is not None:
            n_ctx = self._n_ctx() if s["route"] != "cloud" else None
            parts.append(f"context {s['context']}" + (f"/{n_ctx} tokens used" if n_ctx else " tokens used"))
        if s.get("interrupted") and parts:
            parts.append("interrupted")
        return "; ".join(parts) or "the last reply was interrupted before it finished"

    def _n_ctx(self) -> Optional[int]:
        try:
            return self.router.local_llm().n_ctx
        except Exception:
            return None

    # ---- commands -------------------------------------------------------------------------------
    def command(self, line: str) -> bool:
        """Run a /command; False means leave."""
        from edgegen.errors import EdgegenError

        name, _, arg = line.partition(" ")
        arg = arg.strip()
        try:
            if name in ("/quit", "/exit"):
                return False
            if name == "/help":
                self.say(COMMANDS)
            elif name == "/system":
                self.system = arg or None
                self.say("system prompt set" if arg else "system prompt cleared")
            elif name == "/reset":
                self.history.clear()
                self.last = None
                self.say("conversation cleared")
            elif name == "/save":
                self._save(arg)
            elif name == "/load":
                self._load(arg)
            elif name == "/stats":
                self.say(self.stats_text())
            elif name == "/voice":
                self._voice(arg)
            else:
                self.say(f"unknown command {name!r}; /help lists them")
        except EdgegenError as exc:
            self.say(f"error: {exc}")
        return True

    def _save(self, path: str) -> None:
        if not path:
            self.say("usage: /save FILE")
            return
        try:
            with open(os.path.expanduser(path), "w", encoding="utf-8") as f:
                json.dump(self.messages(), f, ensure_ascii=False, indent=2)
                f.write("\n")
        except OSError as exc:
            self.say(f"error: cannot write {path}: {exc.strerror or exc}")
            return
        self.say(f"saved {len(self.messages())} messages to {path}")

    def _load(self, path: str) -> None:
        if not path:
            self.say("usage: /load FILE")
            return
        messages = load_messages(os.path.expanduser(path))
        self.system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        self.history = messages[1:] if self.system is not None else messages
        self.last = None
        self.say(f"loaded {len(messages)} messages from {path}")

    def _voice(self, arg: str) -> None:
        if arg == "off":
            self.speak = False
            self.say("voice off")
            return
        if arg != "on":
            self.say("usage: /voice on|off")
            return
        from edgegen.errors import AudioDeviceError, EdgegenError

        try:
            from edgegen.audio.playback import check_output_device

            if self.voice is None:
                from edgegen.audio.voice import load_voice

                self.voice = load_voice(self.voice_name)
            check_output_device(None, self.voice.sample_rate)
        except AudioDeviceError as exc:
            self.say(f"voice unavailable: {exc}")
            return
        except EdgegenError as exc:
            self.say(f"voice unavailable: cannot load the voice: {exc}")
            return
        self.speak = True
        self.say("voice on")

    # ---- the loop -------------------------------------------------------------------------------
    def loop(self) -> int:
        from edgegen.errors import EdgegenError

        while True:
            try:
                line = input(PROMPT)
            except KeyboardInterrupt:  # clears the line, as in a shell
                self.say()
                continue
            except EOFError:
                self.say()
                return 0
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return 0
                continue
            try:
                self.reply(line)
            except EdgegenError as exc:  # e.g. the conversation outgrew the context: say so, keep going
                self.say(f"error: {exc}")
                if self.history and self.history[-1]["role"] == "user":
                    self.history.pop()


def run(args: argparse.Namespace) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:  # pragma: no cover - platforms without readline still work, unedited
        pass
    from edgegen.cli.common import default_params, load_options
    from edgegen.router import router_from_args

    params = default_params(args)
    router = router_from_args(args, args.model, **load_options(args))
    try:
        if router.route != "cloud":
            llm = router.local_llm()  # load now: a missing model is reported before the prompt
            base = "; a base model: it continues your text rather than answering it" if llm.is_base_model else ""
            print(f"{llm.name} ({llm.backend_name}, n_ctx {llm.n_ctx}{base}); /help for commands, Ctrl-D to leave",
                  file=sys.stderr, flush=True)
        return ChatREPL(router, params, system=args.system, voice_name=args.voice_name).loop()
    finally:
        router.close()
