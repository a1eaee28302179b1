"""Registers everything around the compiled kernels: composites where no kernel exists, fake kernels, autograd.

Runs once, when vatt.ops is imported, and records which implementation serves each op on each device type.
"""
from __future__ import annotations

import torch

from vatt.ops import autograd, composite, fake
from vatt.ops.library import NAMESPACE, SCHEMAS, Extension

DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA", "xla": "XLA"}
_KEEP_ALIVE: list[torch.library.Library] = []  # registrations last as long as their Library object


def _compiled_name(extension: Extension, key: str) -> str:
    kind = "CUDA" if key == "CUDA" else "C++"
    return f"{kind} ({extension.source}, built for torch {extension.built_for_torch})"


def register(extension: Extension) -> dict[str, dict[str, str]]:
    """Fill the gaps around ``extension``'s kernels; returns {op: {device type: implementation}}."""
    library = torch.library.Library(NAMESPACE, "FRAGMENT")
    _KEEP_ALIVE.append(library)
    served: dict[str, dict[str, str]] = {}
    for name in SCHEMAS:
        qualname = f"{NAMESPACE}::{name}"
        served[name] = {}
        for device, key in DISPATCH_KEYS.items():
            if torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key):
                served[name][device] = _compiled_name(extension, key)
            else:
                library.impl(name, getattr(composite, name), key)
                served[name][device] = "composite"
        torch.library.register_fake(qualname, getattr(fake, name), lib=library)
    autograd.register(library)
    # Under autocast the projection runs in bfloat16 like nn.Linear would (torch.library fixes one dtype per
    # device); the loss needs no entry: it computes in float32 whatever it is given.
    for device in ("cpu", "cuda"):
        torch.library.register_autocast(f"{NAMESPACE}::patch_embed", device, torch.bfloat16, lib=library)
    return served
