"""One rule for what may be shown of an error or a log line: its first line, no tokens, no secrets.

Client libraries put request headers (with `Authorization: Bearer <JWT>`) into exception text
and tracebacks, so everything the kit shows from a library goes through `scrub` or `describe`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A JWT: base64url header (always `{"` -> `eyJ`), payload and a signature that may be empty.
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
TOKEN_PLACEHOLDER = "<token>"
SECRET_PLACEHOLDER = "<secret>"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """The first line of `text` with JWTs and the given secret values replaced."""
    line = _JWT.sub(TOKEN_PLACEHOLDER, text.split("\n", 1)[0])
    for secret in secrets:
        if secret:
            line = line.replace(secret, SECRET_PLACEHOLDER)
    return line


def describe(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """`Type: first line` of an exception, scrubbed; just the type when it has no message."""
    text = scrub(str(error), secrets)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
