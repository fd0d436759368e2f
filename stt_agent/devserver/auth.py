"""Access tokens: LiveKit's JWTs checked the way LiveKit's server checks them.

A token is HS256-signed with the API secret, its `iss` is the API key, and its `video` grant
says what the bearer may do (join one room, create or list rooms, run agents...). Refusals
carry LiveKit's own wording (``pkg/service/auth.go``), so a client or a learner reading the
error sees what a real server would say. Nothing here ever puts a token or the secret into a
message: only the key, which is not secret, and the reason.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable

import jwt
from aiohttp import web
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from livekit.api.access_token import Claims, VideoGrants

__all__ = ["AuthError", "Claims", "Keys", "VideoGrants", "new_id", "require", "room_join_claims"]

# `livekit-server --dev`'s well-known pair: for 127.0.0.1 only
DEV_API_KEY, DEV_API_SECRET = "devkey", "secret"
# LiveKit's messages, word for word
PERMISSIONS_DENIED = "permissions denied"
NO_ROOM_PERMISSION = "no permissions to access the room"


class AuthError(Exception):
    """A request without the right token; the message is what the client is told."""


def new_id(prefix: str) -> str:
    """An id shaped like the real server's: prefix + 12 characters, e.g. ``PA_1a2b3c4d5e6f``."""
    return prefix + uuid.uuid4().hex[:12]


class Keys:
    """One API key and its secret: verifies tokens and signs the ones the server hands out."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self._secret = api_secret

    def __repr__(self) -> str:  # the secret never shows
        return f"Keys({self.api_key!r}, <secret of {len(self._secret)} chars>)"

    def reveal_secret(self) -> str:
        return self._secret

    def token(self) -> api.AccessToken:
        """A new token signed with this pair, to be filled in by the caller."""
        return api.AccessToken(self.api_key, self._secret)

    def sign(self, token: api.AccessToken) -> str:
        with warnings.catch_warnings():
            # `livekit-server --dev`'s secret is the word "secret", too short for PyJWT's taste
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return token.to_jwt()

    def verify(self, token: str) -> Claims:
        """The claims of a token signed with this pair, or AuthError with LiveKit's reason."""
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
        except jwt.PyJWTError:
            raise AuthError("invalid authorization token") from None
        if issuer != self.api_key:
            raise AuthError(f"invalid API key: {str(issuer)[:40]}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                return api.TokenVerifier(self.api_key, self._secret).verify(token)
        except jwt.PyJWTError as e:
            raise AuthError(f"invalid token: {e}") from None
        except (ValueError, TypeError, KeyError, AttributeError):
            # a signed token whose claims have the wrong shape (e.g. `video` not an object)
            raise AuthError("invalid token: malformed claims") from None

    def claims_of(self, request: web.Request) -> Claims | None:
        """Verify the request's token like LiveKit's APIKeyAuthMiddleware: from
        ``Authorization: Bearer`` or ``?access_token=``. No token at all is None (the handler
        then refuses for lack of grants); a token that does not verify raises AuthError."""
        header = request.headers.get("Authorization", "")
        if header:
            if not header.startswith("Bearer "):
                raise AuthError("invalid authorization header. Must start with Bearer ")
            token = header[len("Bearer ") :]
        else:
            token = request.query.get("access_token", "")
        return self.verify(token) if token else None


def require(claims: Claims | None, check: Callable[[VideoGrants], bool]) -> Claims:
    """The claims, if they hold the grant `check` looks for; else LiveKit's refusal."""
    if claims is None or claims.video is None or not check(claims.video):
        raise AuthError(PERMISSIONS_DENIED)
    return claims


def room_join_claims(claims: Claims | None, room_in_query: str) -> tuple[Claims, str]:
    """Claims that may join a room, and that room's name (``pkg/service/rtcservice.go``)."""
    if claims is None or claims.video is None or not claims.video.room_join:
        raise AuthError(NO_ROOM_PERMISSION)
    if not claims.identity:
        raise AuthError("identity cannot be empty")
    room = claims.video.room or room_in_query
    if not room:
        raise AuthError("room cannot be empty")
    return claims, room
