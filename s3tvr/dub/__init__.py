"""Offline dubbing (``s3tvr dub``): :mod:`s3tvr.dub.dubber` runs the stages: phrases, fit, mix,
media, subtitles and the sync report."""
