"""`python -m stt_agent`: the tutorial's worker commands, plus `transcribe` and `check`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
