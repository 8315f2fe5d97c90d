"""LoRA adapters in the store: what `models add --kind adapter` records (the base model's name and
sha256, so an adapter is never silently used with another model) and what `models info` shows.

The adapter file is read by the validating GGUF reader, header and tensor table only; whether it
fits its base model tensor by tensor is checked when it is loaded next to the model
(native/lora.cpp).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import AdapterError, ModelNotFoundError, StoreError
from .inspect import read_gguf_summary


def describe_adapter(path: Path) -> dict[str, Any]:
    """general.type / adapter.type checked; architecture, alpha, targets, ranks and types."""
    from ..gguf import GGUFFile

    with GGUFFile(path) as f:
        md = f.metadata_summary
        if md.get("general.type") != "adapter" or md.get("adapter.type") != "lora":
            raise AdapterError(f"{path}: not a GGUF LoRA adapter (general.type {md.get('general.type')!r}, "
                               f"adapter.type {md.get('adapter.type')!r})")
        ranks = sorted({t.shape[1] for name, t in f.tensors.items() if name.endswith(".lora_a") and len(t.shape) == 2})
        types: dict[str, int] = {}
        for t in f.tensors.values():
            types[t.type_name] = types.get(t.type_name, 0) + 1
        return {
            "architecture": f.architecture,
            "alpha": md.get("adapter.lora.alpha", 0.0),
            "targets": sum(1 for n in f.tensors if n.endswith(".lora_a")),
            "ranks": ranks,
            "tensor_types": dict(sorted(types.items())),
        }


def adapter_manifest_facts(store: Any, src: Path, base: Optional[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(manifest facts, base facts) for registering adapter `src` made for `base` (a store name or a
    .gguf path). Raises StoreError without a base, AdapterError when the architectures differ."""
    if not base:
        raise StoreError("an adapter needs --base: the store name or path of the model it was made for")
    facts = describe_adapter(src)
    if os.sep in base or base.endswith(".gguf"):
        base_path = Path(base).expanduser()
        if not base_path.is_file():
            raise ModelNotFoundError(f"no base model file at {base_path}")
        base_arch = str(read_gguf_summary(base_path).metadata.get("general.architecture", ""))
        base_name, base_sha = base_path.name, store.file_digest(base_path)
    else:
        m = store.manifest(base)
        if m.kind != "llm":
            raise StoreError(f"--base {base!r} is a {m.kind}, not a model")
        base_arch, base_name, base_sha = m.architecture, m.name, m.primary.sha256
    if base_arch and facts["architecture"] != base_arch:
        raise AdapterError(f"{src.name} is for architecture {facts['architecture']!r}; the base {base_name!r} is {base_arch!r}")
    quant = max(facts["tensor_types"], key=facts["tensor_types"].get) if facts["tensor_types"] else ""
    return ({"architecture": facts["architecture"], "format": "gguf-lora", "quantization": quant},
            {"base": base_name, "base_sha256": base_sha})
