"""Loading voices: name resolution, config validation and the directory-escape check."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import edgegen
from edgegen.audio.voice import resolve_voice_files
from edgegen.audio.voice_config import VoiceConfig
from edgegen.errors import InvalidRequestError, ModelFormatError, ModelNotFoundError, VoiceConfigError


def _config(joe_files) -> dict:
    return json.loads(joe_files[1].read_text(encoding="utf-8"))


def test_default_names_resolve_to_packaged_joe(joe_files):
    for name in (None, "joe", "default", "en_US-joe-medium"):
        assert resolve_voice_files(name) == (joe_files[0].resolve(), joe_files[1].resolve())


def test_symlinked_model_must_stay_in_its_directory(tmp_path, joe_files):
    model = tmp_path / "v.onnx"
    os.symlink(joe_files[0], model)  # points outside tmp_path: refused
    shutil.copy(joe_files[1], tmp_path / "v.onnx.json")
    with pytest.raises(ModelNotFoundError, match="outside its directory"):
        edgegen.load_voice(model)
    model.unlink()
    shutil.copy(joe_files[0], tmp_path / "real.onnx")
    os.symlink("real.onnx", model)  # a link inside the same directory is allowed
    shutil.copy(joe_files[1], tmp_path / "real.onnx.json")
    assert edgegen.load_voice(model, threads=1).model_path == (tmp_path / "real.onnx").resolve()
    (tmp_path / "real.onnx").unlink()
    with pytest.raises(ModelNotFoundError):  # dangling link
        edgegen.load_voice(model)


def test_load_copied_voice_by_path_and_dir(tmp_path, joe_files):
    shutil.copy(joe_files[0], tmp_path / "v.onnx")
    shutil.copy(joe_files[1], tmp_path / "v.onnx.json")
    assert edgegen.load_voice(tmp_path / "v.onnx", threads=1).sample_rate == 22050
    assert edgegen.load_voice(str(tmp_path), threads=1).model_path == (tmp_path / "v.onnx").resolve()


def test_config_symlink_escaping_is_refused(tmp_path, joe_files):
    shutil.copy(joe_files[0], tmp_path / "v.onnx")
    os.symlink(joe_files[1], tmp_path / "v.onnx.json")
    with pytest.raises(ModelNotFoundError, match="refusing"):
        resolve_voice_files(tmp_path / "v.onnx")


def test_missing_files_and_unknown_names(tmp_path, joe_files):
    with pytest.raises(ModelNotFoundError, match="known voice"):
        edgegen.load_voice("no-such-voice")
    shutil.copy(joe_files[0], tmp_path / "v.onnx")
    with pytest.raises(ModelNotFoundError):  # no .onnx.json next to it
        edgegen.load_voice(tmp_path / "v.onnx")
    with pytest.raises(ModelNotFoundError, match="exactly one"):
        (tmp_path / "empty").mkdir()
        edgegen.load_voice(tmp_path / "empty")


def test_garbage_model_is_a_format_error(tmp_path, joe_files):
    (tmp_path / "bad.onnx").write_bytes(b"\x00not an onnx model" * 10)
    shutil.copy(joe_files[1], tmp_path / "bad.onnx.json")
    with pytest.raises(ModelFormatError, match="onnxruntime cannot load"):
        edgegen.load_voice(tmp_path / "bad.onnx")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.pop("audio"), "audio"),
        (lambda c: c["audio"].update(sample_rate=0), "sample_rate"),
        (lambda c: c["audio"].update(sample_rate="22050"), "sample_rate"),
        (lambda c: c.pop("phoneme_id_map"), "phoneme_id_map"),
        (lambda c: c["phoneme_id_map"].pop("_"), "pad/bos/eos"),
        (lambda c: c["phoneme_id_map"].update(a=[999]), "outside"),
        (lambda c: c["phoneme_id_map"].update(a=[]), "non-empty"),
        (lambda c: c.update(phoneme_map={"a": "b"}), "phoneme_map"),
        (lambda c: c.update(num_speakers=0), "num_speakers"),
        (lambda c: c.update(speaker_id_map={"x": 3}), "speaker_id_map"),
        (lambda c: c.update(phoneme_type="pinyin"), "not supported"),
        (lambda c: c["espeak"].update(voice=""), "espeak.voice"),
        (lambda c: c["inference"].update(noise_w=float("nan")), "noise_w"),
        (lambda c: c.update(vowel_clusters=[["a", "q"]]), "not in phoneme_id_map"),
    ],
)
def test_bad_configs_raise_voice_config_error(joe_files, mutate, message):
    config = _config(joe_files)
    mutate(config)
    with pytest.raises(VoiceConfigError, match=message):
        VoiceConfig.from_dict(config)


def test_unparseable_config_file(tmp_path):
    path = tmp_path / "v.onnx.json"
    path.write_text("{not json")
    with pytest.raises(VoiceConfigError, match="not a valid JSON"):
        VoiceConfig.from_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(VoiceConfigError, match="JSON object"):
        VoiceConfig.from_file(path)


def test_joe_config_fields(joe_files):
    config = VoiceConfig.from_file(joe_files[1])
    assert (config.sample_rate, config.num_speakers, config.espeak_voice) == (22050, 1, "en-us")
    assert config.noise_scale == pytest.approx(0.667) and config.noise_w_scale == pytest.approx(0.8)


@pytest.mark.parametrize(
    "kwargs",
    [{"speaker": 1}, {"speaker": "bob"}, {"length_scale": 0}, {"noise_scale": float("inf")}, {"volume": -1}, {"split": "word"}],
)
def test_bad_synthesis_settings_raise_at_call_time(voice, kwargs):
    with pytest.raises(InvalidRequestError):
        voice.stream("hello", **kwargs)


def test_bad_threads(joe_files):
    with pytest.raises(InvalidRequestError):
        edgegen.load_voice("joe", threads=0)
