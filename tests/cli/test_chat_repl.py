"""`edgegen chat` driven through a pseudo-terminal (pexpect): a two-turn conversation whose replies
are the model's greedy replies to the growing history (reference: llama-cpp-python's chat call on
the same file), Ctrl-C mid-reply, the slash commands, and Ctrl-D to leave."""
from __future__ import annotations

import json
import os
import sys

import pexpect
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_CTX = 512
N = 10


@pytest.fixture(scope="module")
def model_path() -> str:
    from edgegen.llm import resolve_model_path

    return resolve_model_path("smollm2")


@pytest.fixture(scope="module")
def ref(model_path):
    from llama_cpp import Llama

    llama = Llama(model_path=model_path, n_ctx=N_CTX, n_threads=1, n_threads_batch=1, verbose=False)
    yield lambda messages, n=N: llama.create_chat_completion(messages=messages, temperature=0.0, max_tokens=n)["choices"][0]
    llama.close()


def spawn(model_path: str, *extra: str, home: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "dumb", "HOME": home, "PYTHONUNBUFFERED": "1"}
    args = ["-m", "edgegen", "chat", "--model", model_path, "--backend", "llama.cpp", "--ctx", str(N_CTX),
            "--threads", "1", "--temperature", "0", *extra]
    child = pexpect.spawn(sys.executable, args, cwd=REPO, env=env, encoding="utf-8", timeout=60,
                          dimensions=(50, 400))  # wide: readline must not scroll long lines
    child.expect_exact(">>> ")
    return child


def ask(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect_exact(">>> ")
    out = child.before.replace("\r\n", "\n")
    assert out.startswith(line + "\n")  # the terminal echoes the typed line
    return out[len(line) + 1:].rstrip("\n")


def test_two_turns_stats_save_load(model_path, ref, tmp_path):
    child = spawn(model_path, "-n", str(N), home=str(tmp_path))
    history = [{"role": "user", "content": "What is the capital of France?"}]
    first = ask(child, history[0]["content"])
    assert first == ref(history)["message"]["content"]
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "And of Italy?"}]
    second = ask(child, "And of Italy?")
    assert second == ref(history)["message"]["content"]  # the reply saw the first turn

    stats = ask(child, "/stats")
    assert "tok/s" in stats and "first token after" in stats and f"/{N_CTX} tokens used" in stats
    saved = tmp_path / "conv.json"
    assert "saved 4 messages" in ask(child, f"/save {saved}")
    assert json.loads(saved.read_text()) == history + [{"role": "assistant", "content": second}]

    assert "cleared" in ask(child, "/reset")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"role": "user", "content": 3}]))
    assert "error" in ask(child, f"/load {bad}") and "content" in ask(child, f"/load {bad}")
    assert "loaded 4 messages" in ask(child, f"/load {saved}")
    third = ask(child, "Thanks!")  # continues the loaded conversation
    expect = history + [{"role": "assistant", "content": second}, {"role": "user", "content": "Thanks!"}]
    assert third == ref(expect)["message"]["content"]

    child.sendeof()  # Ctrl-D leaves
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_the_reply_not_the_repl(model_path, ref, tmp_path):
    prompt = "Write a long story about a dragon and a knight."
    full = ref([{"role": "user", "content": prompt}], 200)
    assert full["finish_reason"] == "length"  # the reply runs long: there is something to stop
    child = spawn(model_path, "-n", "200", home=str(tmp_path))
    child.sendline(prompt)
    child.expect_exact(prompt)
    child.expect(r"\w\w")  # the reply is streaming
    child.sendintr()
    child.expect_exact("[interrupted]")
    child.expect_exact(">>> ")
    stats = ask(child, "/stats")  # complete although the final chunk (and its usage) never came
    assert "first token after" in stats and "tok/s" in stats and stats.endswith("interrupted")
    assert f"/{N_CTX} tokens used" in stats
    assert ask(child, "/voice on").startswith("voice unavailable: no audio output device")  # no sound card here
    assert ask(child, "Say hi.")  # still answering
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
