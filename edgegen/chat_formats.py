"""How a model turns chat messages into its prompt when its file carries no chat template.

A base (pre-trained, not instruction-tuned) model has no chat template and was never taught any
turn format: dressing the conversation in ChatML makes it continue the markup
(`<|im_end|>\\n<|im_start|>admin...`). Such a model runs chat as a plain completion of the
messages' text. Where the manifest names the model's family (`chat_template = "gemma"`), that
family's published template is used instead.

Formats: "template" (the file's own template), "completion", or a family in FAMILY_TEMPLATES.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Union

# Gemma's chat template as the instruction-tuned Gemma 3 GGUFs carry it (text-only content; a
# system message becomes the first user turn's prefix, roles must alternate).
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

FAMILIES = ("chatml", "gemma")  # what a manifest's `chat_template` may name
FORMATS = ("template", "completion", *FAMILIES)


def family_template(family: str) -> str:
    if family == "gemma":
        return GEMMA_TEMPLATE
    if family == "chatml":
        from .chat import CHATML_TEMPLATE

        return CHATML_TEMPLATE
    raise ValueError(f"unknown chat template family {family!r}; known: {', '.join(FAMILIES)}")


def completion_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """The plain-completion prompt of a conversation: the messages' text, one paragraph each
    (a base model continues it; roles carry no meaning for it)."""
    return "\n\n".join(str(m["content"]) for m in messages)


def chat_format_for(model: Union[str, "os.PathLike[str]"], has_template: bool) -> tuple[str, Optional[str]]:
    """(format, store name) for `model` (a store name or a path). The format: the manifest's family
    when it names one, "completion" for a base model or a file without a template, else "template".
    The store name is None for a path."""
    manifest = _manifest(model)
    name = manifest.name if manifest is not None else None
    if manifest is not None and manifest.chat_template:
        return manifest.chat_template, name
    if not has_template or (manifest is not None and manifest.base_model):
        return "completion", name
    return "template", name


def _manifest(model: Union[str, "os.PathLike[str]"]) -> Any:
    from .errors import EdgegenError
    from .store.model_store import ModelStore, _as_existing_path

    if not isinstance(model, str) or _as_existing_path(model) is not None:
        return None
    try:
        return ModelStore().manifest(model)
    except (EdgegenError, OSError):
        return None
