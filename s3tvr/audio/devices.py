"""Sound devices through PortAudio (sounddevice): listing and choosing by index or name."""

from __future__ import annotations

from typing import Any, Callable, Optional

from s3tvr.errors import InputError, SetupError


def sd() -> Any:
    """The sounddevice module; PortAudio missing becomes a one-line fix."""
    try:
        import sounddevice
    except OSError:
        raise SetupError("PortAudio library not found: install it (Debian: apt-get install libportaudio2)") from None
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    lib = sd()
    apis = lib.query_hostapis()
    default_in, default_out = lib.default.device
    out = []
    for index, dev in enumerate(lib.query_devices()):
        out.append({
            "index": index, "name": dev["name"], "hostapi": apis[dev["hostapi"]]["name"],
            "inputs": dev["max_input_channels"], "outputs": dev["max_output_channels"],
            "rate": dev["default_samplerate"], "default_input": index == default_in, "default_output": index == default_out,
        })
    return out


def resolve(spec: Optional[str], kind: str) -> int:
    """Device index for ``spec`` (an index, a name substring, or None for the default).

    ``kind`` is "input" or "output"; the device must have channels of that kind.
    """
    lib = sd()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    devices = lib.query_devices()
    if spec is None or spec == "":
        index = lib.default.device[0 if kind == "input" else 1]
        if index is None or index < 0 or not devices or devices[index][key] < 1:
            raise InputError(f"no default {kind} device: connect one, or choose one with --{kind}-device (see s3tvr devices)")
        return int(index)
    spec = str(spec)
    if spec.isdigit():
        index = int(spec)
        if index >= len(devices) or devices[index][key] < 1:
            raise InputError(f"{kind} device {index} does not exist or has no {kind} channels: see s3tvr devices")
        return index
    matches = [i for i, d in enumerate(devices) if spec.lower() in d["name"].lower() and d[key] > 0]
    if not matches:
        raise InputError(f"no {kind} device named like {spec!r}: see s3tvr devices for the names")
    exact = [i for i in matches if devices[i]["name"].lower() == spec.lower()]
    return (exact or matches)[0]


def default_rate(index: int) -> int:
    return int(sd().query_devices(index)["default_samplerate"])


def start_stream(make: Callable[[int], Any], kind: str, label: Any) -> Any:
    """Start the stream ``make(channels)`` builds: mono, or stereo for hardware that does only that."""
    error = None
    for channels in (1, 2):
        try:
            stream = make(channels)
            stream.start()
            return stream
        except Exception as exc:  # PortAudioError: busy, unplugged, unsupported rate or format
            error = exc
    raise SetupError(f"cannot open {kind} device {label}: {error}. Choose another with --{kind}-device (see s3tvr devices)")
