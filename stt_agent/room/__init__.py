"""Room mode: the worker runtime in the kernel, rooms and tokens, every participant transcribed, virtual speakers."""
