"""Evaluation: how good and how fast the system is on real speech (``s3tvr eval``)."""
