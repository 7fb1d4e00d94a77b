"""Model backends: one module each, one entry in :mod:`s3tvr.backends.registry`."""
