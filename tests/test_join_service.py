"""The workshop's join link against the LiveKit stand-in: the page, one token per name,
HTTPS with the certificate made at start, and a link that can be closed."""

from __future__ import annotations

import json
import ssl

import aiohttp
import jwt
import pytest
from cryptography import x509
from livekit import api

from stt_agent.config import Secret, Settings
from stt_agent.room.join_service import ATTENDEE_TOKEN_TTL, JoinService
from tests.standins.livekit_server import LiveKitStandIn

SECRET = "secret-of-at-least-32-characters-long"
ROOM = "workshop-room"


@pytest.fixture
async def settings():
    async with LiveKitStandIn(api_secret=SECRET) as standin:
        yield Settings(
            livekit_url=standin.ws_url, livekit_api_key="devkey", livekit_api_secret=Secret(SECRET)
        )


@pytest.fixture
async def service(settings):
    service = JoinService(settings, ROOM, reserved=("alice",))
    await service.start()
    yield service
    await service.close()


async def _join(link: str, name: object, claim: str = "", **kw) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(link + "join", json={"name": name, "claim": claim}, **kw) as r,
    ):
        return r.status, await r.json()


async def test_an_attendee_gets_a_short_lived_token_for_this_room_only(service, settings):
    status, body = await _join(service.link, "  Ada   Lovelace ")
    assert status == 200, body
    assert body["identity"] == "Ada Lovelace" and body["room"] == ROOM
    claims = api.TokenVerifier("devkey", SECRET).verify(body["token"])
    assert claims.identity == "Ada Lovelace"
    assert claims.video.room_join and claims.video.room == ROOM
    assert not (claims.video.room_create or claims.video.room_admin or claims.video.room_list)
    payload = jwt.decode(body["token"], options={"verify_signature": False})
    assert payload["exp"] - payload["nbf"] <= ATTENDEE_TOKEN_TTL.total_seconds() <= 15 * 60
    # the page reaches LiveKit through this service (same origin), never with the secret
    assert body["url"] == service.link.rstrip("/")
    assert SECRET not in json.dumps(body)
    assert service.names == ["alice", "Ada Lovelace"]


async def test_names_are_unique_but_the_same_tab_can_rejoin(service):
    status, first = await _join(service.link, "Grace")
    assert status == 200
    status, other = await _join(service.link, "grace")  # case does not make a new name
    assert status == 409 and "taken" in other["error"]
    status, again = await _join(service.link, "Grace", claim=first["claim"])
    assert status == 200 and again["identity"] == "Grace"  # a reload keeps its name
    status, taken = await _join(service.link, "Alice")  # a virtual speaker's
    assert status == 409 and "Alice" in taken["error"]


@pytest.mark.parametrize(
    ("name", "says"),
    [("", "type a name"), ("x" * 41, "at most 40"), ("a\u0000b", "control"), (7, "as text")],
)
async def test_a_bad_name_is_one_readable_refusal(service, name, says):
    status, body = await _join(service.link, name)
    assert status == 400 and says in body["error"]


async def test_the_page_and_the_sdk_are_served_from_the_kit(service):
    async with aiohttp.ClientSession() as http:
        async with http.get(service.link) as r:
            assert r.status == 200 and "Live captions" in await r.text()
            assert "no-referrer" in r.headers["Referrer-Policy"]
        async with http.get(service.link + "vendor/livekit-client.umd.js") as r:
            assert r.status == 200 and len(await r.read()) > 100_000
        wrong = service.link.rsplit("/", 2)[0] + "/not-the-code/"
        async with http.get(wrong) as r:
            assert r.status == 404


async def test_https_with_a_certificate_made_at_start(settings):
    service = JoinService(settings, ROOM, secure=True)
    await service.start()
    try:
        assert service.link.startswith("https://127.0.0.1:")
        assert service.certificate is not None
        cert = x509.load_pem_x509_certificate(service.certificate.pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        trust = ssl.create_default_context(cadata=service.certificate.pem.decode())
        status, body = await _join(service.link, "Ada", ssl=trust)
        assert status == 200 and body["url"].startswith("https://")
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _join(service.link, "Bob")  # an unknown certificate: the browser's warning
    finally:
        await service.close()


async def test_a_closed_link_lets_no_one_in(service):
    link = service.link
    await service.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _join(link, "Late")
    await service.close()  # twice is fine
