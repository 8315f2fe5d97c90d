"""LoRA adapters through the server, with the official `openai` client: a request selects adapters
(`adapters: {name: scale}`, or llama-server's `lora: [{id, scale}]`) and gets what `LLM.chat` gives
with the same selection; /v1/models lists the adapters; bad selections are 400s naming the field.
The model is a tiny random llama file on the native engine (tests/engine/tiny_models.py)."""
from __future__ import annotations

import httpx
import openai
import pytest

import edgegen
from tests.engine.test_architectures import CONFIGS
from tests.engine.tiny_lora import ATTN, MLP, LoraConfig, write_lora
from tests.engine.tiny_models import write_tiny_gguf
from tests.server.server_harness import MODEL_ID, ThreadServer

MSGS = [{"role": "user", "content": "aa ab ac ad ae af ag"}]


@pytest.fixture(scope="module")
def adapter_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("server_lora")
    base = CONFIGS["llama"][1]
    path = str(write_tiny_gguf(base, d / "base.gguf"))
    adapters = {
        "attn": str(write_lora(base, LoraConfig(32, ATTN, "Q8_0", gain=0.25), d / "attn.gguf")),
        "mlp": str(write_lora(base, LoraConfig(16, MLP, "F16", gain=0.25, seed=1), d / "mlp.gguf")),
    }
    llm = edgegen.load(path, backend="native", n_ctx=256, n_threads=2, adapters=adapters)
    with ThreadServer(llm) as s:
        yield s, llm
    llm.backend.close()


def test_requests_select_adapters(adapter_server) -> None:
    server, llm = adapter_server
    client = server.client()

    def ask(**extra) -> str:
        r = client.chat.completions.create(model=MODEL_ID, messages=MSGS, max_tokens=8, temperature=0, extra_body=extra)
        return r.choices[0].message.content

    expected = {
        sel: llm.chat(MSGS, max_tokens=8, temperature=0, adapters=dict(sel)).message.content
        for sel in ((), (("attn", 1.0),), (("attn", 1.0), ("mlp", 2.0)))
    }
    assert len(set(expected.values())) == 3
    assert ask() == expected[()]
    assert ask(adapters={"attn": 1.0}) == expected[(("attn", 1.0),)]
    assert ask(lora=[{"id": 0, "scale": 1.0}, {"id": 1, "scale": 2.0}]) == expected[(("attn", 1.0), ("mlp", 2.0))]
    assert ask(adapters={"attn": 0.0}) == expected[()]  # scale 0: the base model
    assert ask() == expected[()]  # and back, with no reload


def test_models_lists_adapters(adapter_server) -> None:
    server, _ = adapter_server
    models = httpx.get(server.base + "/v1/models").json()["data"]
    listed = models[0]["adapters"]
    assert [(a["id"], a["name"], a["rank"]) for a in listed] == [(0, "attn", 32), (1, "mlp", 16)]


@pytest.mark.parametrize("extra,param", [
    ({"adapters": {"nope": 1.0}}, "adapters"),
    ({"adapters": {"attn": 1e9}}, "adapters"),
    ({"adapters": {"attn": "1"}}, "adapters"),
    ({"lora": [{"id": 5, "scale": 1.0}]}, "lora"),
])
def test_bad_selection_is_400(adapter_server, extra, param) -> None:
    server, _ = adapter_server
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(model=MODEL_ID, messages=MSGS, max_tokens=2, extra_body=extra)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param


def test_serve_lora_flag(capsys, tmp_path) -> None:
    """`edgegen serve --lora` takes name=path; a bad one is a one-line error before anything loads."""
    from edgegen.cli.main import main

    assert main(["serve", "--lora", "menu"]) == 1
    assert "--lora takes name=path" in capsys.readouterr().err
    from tests.server.server_harness import free_port

    assert main(["serve", "--lora", f"menu={tmp_path}/absent.gguf", "--model", f"{tmp_path}/absent.gguf",
                 "--port", str(free_port())]) == 1
