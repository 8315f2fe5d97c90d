"""Model store: manifests (models/*.toml), pull/add/rm, sha256 verification, name resolution.

`resolve_model(name_or_path, kind)` is what loaders call; `ModelStore` is the full interface.
The memory fit check lives in edgegen.fit.
"""
from __future__ import annotations

from .manifest import ChunkSpec, FileSpec, Manifest, validate_name
from .model_store import ModelStore, StoreEntry, default_home, resolve_model

__all__ = ["ChunkSpec", "FileSpec", "Manifest", "ModelStore", "StoreEntry", "default_home", "resolve_model",
           "validate_name"]
