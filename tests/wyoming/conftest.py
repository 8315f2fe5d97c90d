"""Wyoming fixtures: the packaged joe voice and SmolLM2 behind one in-thread edgegen Wyoming
server (noise off, so synthesis is deterministic and comparable), and `Voice`/`LLM` objects on
the same files as the references."""
from __future__ import annotations

import pytest

from tests.wyoming.harness import ThreadServer

THREADS = 2
NOISE_OFF = dict(noise_scale=0.0, noise_w=0.0)


@pytest.fixture(scope="session")
def voice(server):
    """The server's own `Voice` for joe (loaded by the store path, threads=2): the reference
    calls `Voice.stream` directly on it."""
    library = server.wyoming.voices
    return library.load(library.default)


@pytest.fixture(scope="session")
def llm():
    import edgegen

    return edgegen.load("smollm2", n_ctx=1024, n_threads=THREADS)


@pytest.fixture(scope="session")
def greedy():
    from edgegen.sampling import SamplingParams

    return SamplingParams(temperature=0.0, max_tokens=16)


def make_server(*, llm=None, params=None, limits=None, voice=None, **tts):
    """A WyomingServer over the store's voices (joe by default), with the LLM if given; `voice`:
    an already loaded Voice to serve instead of loading the store's file again."""
    from edgegen.server.worker import GenerationWorker
    from edgegen.store import ModelStore
    from edgegen.wyoming.conversation import ConversationSettings, Conversations
    from edgegen.wyoming.protocol import Limits
    from edgegen.wyoming.server import WyomingServer
    from edgegen.wyoming.services import Catalog, VoiceLibrary
    from edgegen.wyoming.tts import TtsDefaults

    store = ModelStore()
    loader = (lambda entry: voice) if voice is not None else None
    catalog = Catalog(voices=VoiceLibrary.from_store(store, "joe", threads=THREADS, loader=loader))
    conversations = None
    if llm is not None:
        conversations = Conversations(llm, GenerationWorker(slots=1, max_queue=4), params, ConversationSettings(),
                                      name="smollm2", manifest=store.manifest("smollm2"))
        catalog.llm_name, catalog.llm_manifest = conversations.name, conversations.manifest
    return WyomingServer(catalog, limits=limits or Limits(), tts_defaults=TtsDefaults(**{**NOISE_OFF, **tts}),
                         conversations=conversations)


@pytest.fixture(scope="session")
def server(llm, greedy):
    s = ThreadServer(make_server(llm=llm, params=greedy))
    yield s
    s.close()
