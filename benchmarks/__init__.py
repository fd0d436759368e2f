"""Benchmarks of the local mode against a plain LiveKit baseline (`python -m benchmarks`)."""
