"""A model without a chat template (the packaged Gemma 3 270M base model) runs chat as a plain
completion, or with its family's known template where the manifest names one."""
from __future__ import annotations

import json

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

import edgegen
from edgegen.chat_formats import GEMMA_TEMPLATE
from edgegen.cli.main import main
from edgegen.errors import StoreError
from edgegen.llm import LLM
from edgegen.store.manifest import parse_manifest

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def gemma():
    return edgegen.load("gemma3-270m", backend="native", n_ctx=256, n_threads=1)


def test_the_base_model_chats_as_a_plain_completion(gemma):
    assert gemma.is_base_model and gemma.chat_format == "completion" and gemma.name == "gemma3-270m"
    assert gemma.render_chat([{"role": "user", "content": QUESTION}]) == QUESTION
    chat = gemma.chat([{"role": "user", "content": QUESTION}], temperature=0, max_tokens=8).text
    assert chat == gemma.generate(QUESTION, temperature=0, max_tokens=8).text
    assert "<|im_" not in chat and "Paris" in chat


def test_run_prints_the_completion_without_chatml(gemma, capsys):
    assert main(["run", QUESTION, "-m", "gemma3-270m", "--ctx", "256", "-t", "1", "--temperature", "0", "-n", "8"]) == 0
    assert capsys.readouterr().out == gemma.generate(QUESTION, temperature=0, max_tokens=8).text + "\n"


def test_models_info_says_base_model(capsys):
    assert main(["models", "info", "gemma3-270m", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["base_model"] is True and info["chat"].startswith("plain completion")
    assert main(["models", "info", "smollm2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["base_model"] is False and info["chat"] == "the file's chat template"


def test_a_family_named_in_the_manifest_uses_its_known_template(gemma):
    family = LLM(gemma.backend, gemma.model_path, chat_format="gemma")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": QUESTION}]
    reference = Jinja2ChatFormatter(GEMMA_TEMPLATE, eos_token="<eos>", bos_token="<bos>",
                                    add_generation_prompt=True)(messages=messages).prompt
    assert family.render_chat(messages) == reference == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        f"<start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n")


def test_manifest_chat_template_must_be_a_known_family():
    base = {"name": "m", "kind": "llm", "files": [{"name": "m.gguf", "size": 1, "sha256": "0" * 64, "path": "/m.gguf"}]}
    assert parse_manifest({**base, "chat_template": "gemma"}).chat_template == "gemma"
    assert parse_manifest({**base, "base_model": True}).base_model
    with pytest.raises(StoreError, match="chat_template must be one of"):
        parse_manifest({**base, "chat_template": "vicuna"})
