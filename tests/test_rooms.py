"""Room-mode frontends against the LiveKit stand-in: tokens, room creation, explicit dispatch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from livekit import api

from stt_agent.config import Secret, Settings
from stt_agent.room.rooms import (
    RoomError,
    RoomSession,
    mint_user_token,
    open_room,
    playground_url,
    show_room,
)
from tests.standins.livekit_server import LiveKitStandIn

SECRET = "secret-of-at-least-32-characters-long"


@pytest.fixture
async def lk():
    async with LiveKitStandIn(api_secret=SECRET) as standin:
        yield standin


def _settings(url: str = "ws://127.0.0.1:9", secret: str = SECRET) -> Settings:
    return Settings(livekit_url=url, livekit_api_key="devkey", livekit_api_secret=Secret(secret))


def test_token_is_scoped_to_one_room():
    token = mint_user_token(_settings(), "room-a", identity="ada")
    claims = api.TokenVerifier("devkey", SECRET).verify(token)
    assert claims.identity == "ada"
    v = claims.video
    assert v.room_join and v.room == "room-a"
    assert v.can_publish and v.can_subscribe
    assert not (v.room_create or v.room_admin or v.room_list or v.room_record or v.agent)
    assert not v.ingress_admin


def test_token_ttl_is_at_least_ten_minutes():
    import jwt

    with pytest.raises(ValueError, match="at least 10 minutes"):
        mint_user_token(_settings(), "r", ttl=timedelta(minutes=9))
    token = mint_user_token(_settings(), "r", ttl=timedelta(minutes=10))
    api.TokenVerifier("devkey", SECRET).verify(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert abs(payload["exp"] - payload["nbf"] - 600) <= 2
    payload = jwt.decode(mint_user_token(_settings(), "r"), options={"verify_signature": False})
    assert abs(payload["exp"] - payload["nbf"] - 900) <= 2  # 15 minutes by default


def test_token_needs_livekit_settings():
    with pytest.raises(ValueError, match="room mode needs a LiveKit server"):
        mint_user_token(Settings(), "r")


async def test_open_room_creates_room_and_dispatches_agent(lk):
    session = await open_room(_settings(lk.ws_url), agent_name="transcriber", identity="ada")
    assert session.room.startswith("stt-agent-")
    assert session.room in lk.rooms_info
    assert [(d.agent_name, d.room) for d in lk.dispatches] == [("transcriber", session.room)]
    assert session.dispatch_id == lk.dispatches[0].id
    claims = api.TokenVerifier(lk.api_key, lk.api_secret).verify(session.token)
    assert claims.identity == "ada" and claims.video.room == session.room
    for shown in (repr(session), str(session), session._repr_html_(), f"{session}"):
        assert session.token not in shown
        assert SECRET not in shown
        assert session.room in shown


async def test_open_room_without_agent_name_does_not_dispatch(lk):
    session = await open_room(_settings(lk.ws_url), room="workshop", dispatch=True)
    assert session.room == "workshop" and "workshop" in lk.rooms_info
    assert lk.dispatches == [] and session.dispatch_id is None
    await open_room(_settings(lk.ws_url), room="w2", agent_name="transcriber", dispatch=False)
    assert lk.dispatches == []


async def test_wrong_secret_is_a_clear_error_without_secrets(lk):
    wrong = "not-the-secret-but-also-32-characters-long"
    with pytest.raises(RoomError, match="refused the API key/secret") as info:
        await open_room(_settings(lk.ws_url, wrong), agent_name="transcriber")
    text = str(info.value)
    assert wrong not in text and SECRET not in text and "eyJ" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert lk.rooms_info == {}


async def test_unreachable_server_is_a_clear_error_without_secrets():
    with pytest.raises(
        RoomError, match=r"cannot reach the LiveKit server at ws://127\.0\.0\.1:9"
    ) as e:
        await open_room(_settings(), agent_name="transcriber")
    assert SECRET not in str(e.value) and "eyJ" not in str(e.value)


def test_show_room_embeds_the_page_but_prints_no_token(monkeypatch):
    from livekit.rtc import jupyter

    shown = []
    monkeypatch.setattr(jupyter, "display", lambda obj: shown.append(obj))
    session = RoomSession("r", "ada", "ws://lk.example", _token="eyJhb.tok.en")
    show_room(session)
    (html,) = shown
    assert "<iframe" in html.data and "eyJhb.tok.en" in html.data  # the player needs it
    assert "eyJhb.tok.en" not in repr(session)


def test_playground_url():
    url = playground_url(_settings())
    assert url.startswith("https://agents-playground.livekit.io/#")
    assert "mic=1" in url and "cam=0" in url
