"""Audio in and out: decoding (decode), devices, loudness, audio as it streams (blocks, resampling:
streams), and what cleans it: the denoiser (denoise) and voice/background separation (separation)."""

SAMPLE_RATE = 16000  # the rate of all audio an ASR hears, and every live stage before TTS works at
