"""The Wyoming protocol server (Home Assistant): text-to-speech, speech-to-text, wake word and an
LLM conversation agent from one process, on the `wyoming` package's server and event classes.

    edgegen wyoming --uri tcp://127.0.0.1:10300          # docs/wyoming.md

`protocol.py` reads events from an untrusted socket (size caps, deadlines); `handler.py` is one
connection; `tts.py`, `listen.py` (asr + wake) and `conversation.py` are the services;
`services.py` finds what is installed and describes it; `server.py` binds and runs it all.
"""
from __future__ import annotations

from .server import WyomingServer, serve_wyoming

__all__ = ["WyomingServer", "serve_wyoming"]
