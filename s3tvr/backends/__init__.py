"""Model backends: one module each (asr/, mt/, tts/), one entry in :mod:`s3tvr.backends.registry`.

Beside them, what every caller of a model shares: :mod:`~s3tvr.backends.kinds` (what an ASR, an
MT and a TTS backend are), :mod:`~s3tvr.backends.registry` (name -> module, pip extra),
:mod:`~s3tvr.backends.device` (device and dtype checks), :mod:`~s3tvr.backends.fake` (scripted
fakes of every kind), and the models that serve features rather than the live path:
:mod:`~s3tvr.backends.language_id` (the language spoken, by Whisper) and
:mod:`~s3tvr.backends.voice_similarity` (speaker embeddings, by Resemblyzer: eval, dub's speakers,
finetune prepare). Where the weights come from: :mod:`s3tvr.weights`.
"""
