"""Audio in and out: decoding, devices, loudness, and audio as it streams (blocks, resampling)."""

SAMPLE_RATE = 16000  # the rate of all audio an ASR hears, and every live stage before TTS works at
