"""Audio in and out: decoding, sources (file, microphone), sinks (file, speaker), devices."""
