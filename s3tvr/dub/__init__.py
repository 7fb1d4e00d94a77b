"""Offline dubbing (``s3tvr dub``, in progress): so far the fitting of dubbed phrases into the
original's timeline (:mod:`s3tvr.dub.fit`)."""
