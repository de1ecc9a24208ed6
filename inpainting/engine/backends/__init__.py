"""Inference backends. Each is loaded lazily and at most once per process."""
