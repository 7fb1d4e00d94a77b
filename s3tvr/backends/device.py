"""Device and dtype checks for the backends (NeMo, transformers, XTTS, Whisper)."""

from __future__ import annotations

from typing import Any

from s3tvr.errors import InputError, SetupError

DTYPES = ("auto", "float32", "float16", "bfloat16")


def torch_dtype(name: str, device: str) -> Any:
    """``auto``: half precision on CUDA (half the memory and time), float32 on the CPU (half is slow there).

    On CUDA, bfloat16 where the GPU computes it natively (Ampere and newer), float16 before that:
    bfloat16 has float32's range, so activations past float16's 65504 stay finite (NeMo's own
    transcription script offers the same: compute_dtype=bfloat16 with amp off).
    """
    import torch

    if name not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, not {name!r}")
    if name == "auto":
        if device != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if name == "float16" and device != "cuda":
        raise InputError("dtype float16 needs --device cuda: on the CPU use float32 (or bfloat16)")
    return getattr(torch, name)


def check_device(device: str) -> None:
    """Refuse a device name we do not know, or CUDA where PyTorch sees no GPU, before anything loads."""
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device must be cpu or cuda, not {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SetupError("--device cuda but no CUDA GPU is visible to PyTorch: use --device cpu, or install a CUDA build of torch")
