"""Device and dtype for the torch backends (NeMo, transformers, XTTS)."""

from __future__ import annotations

from typing import Any

from s3tvr.errors import InputError

DTYPES = ("auto", "float32", "float16", "bfloat16")


def torch_dtype(name: str, device: str) -> Any:
    """``auto``: float16 on CUDA (half the memory and time), float32 on the CPU (half is slow there)."""
    import torch

    if name not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, not {name!r}")
    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    if name == "float16" and device != "cuda":
        raise InputError("dtype float16 needs --device cuda: on the CPU use float32 (or bfloat16)")
    return getattr(torch, name)
