"""The agent in the background of a running loop (local mode): feed, handlers, lifecycle."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import stt_agent
from benchmarks.scoring import corpus_wer
from stt_agent import LocalSTT, TranscriptFeed, TranscriptView, Utterance, samples
from stt_agent.handle import REPLACED, current_agent


def _finals(feed: TranscriptFeed) -> list[Utterance]:
    return list(feed.utterances)


async def test_start_local_returns_at_once_and_delivers_every_utterance(jfk, local_stt):
    handle = await stt_agent.start_local(jfk, realtime=False, stt=local_stt)
    # the cell is not blocked: start_local returned before the first word was heard
    assert handle.status.state == "starting" and not handle.feed.utterances
    await handle.wait_ready(timeout=10)
    result = await asyncio.wait_for(handle.done(), 60)
    assert handle.status.state == "finished"
    assert result == _finals(handle.feed)
    assert len(result) >= 3
    wer = corpus_wer([samples.info("jfk").text], [" ".join(u.text for u in result)])
    assert wer <= 0.1
    await handle.stop()
    assert handle.status.state == "stopped"


async def test_handler_swapped_mid_stream_applies_from_the_next_utterance(jfk, local_stt):
    handle = await stt_agent.start_local(jfk, realtime=False, stt=local_stt)
    handle.on_turn(lambda u: {"version": "A"}, name="tag")

    def swap_after_first(event: object) -> None:
        if isinstance(event, Utterance) and event.final and handle.feed.counts["final"] == 1:
            handle.on_turn(lambda u: {"version": "B"}, name="tag")

    handle.feed.subscribe(swap_after_first)
    result = await asyncio.wait_for(handle.done(), 60)
    versions = [u.annotations.get("version") for u in result]
    assert versions[0] == "A"
    assert versions[1:] and set(versions[1:]) == {"B"}
    assert handle.turn_handlers == ["tag"]
    handle.remove_turn_handler("tag")
    assert handle.turn_handlers == []
    await handle.stop()


async def test_raising_handler_loses_no_utterance(jfk, local_stt):
    handle = await stt_agent.start_local(jfk, realtime=False, stt=local_stt)

    @handle.on_turn
    def broken(u: Utterance) -> None:
        raise ValueError("oops")

    @handle.on_turn
    def upper(u: Utterance) -> str:
        return u.text.upper()

    result = await asyncio.wait_for(handle.done(), 60)
    assert len(result) >= 3
    for u in result:
        assert u.handler_errors == ["broken: ValueError: oops"]
        assert u.text.isupper()  # the next handler still ran
    assert handle.handlers.stats["broken"].errors == len(result)
    await handle.stop()


async def test_slow_handlers_are_timed_out(jfk, local_stt):
    handle = await stt_agent.start_local(jfk, realtime=False, stt=local_stt)
    handle.handlers.timeout_s = 0.3

    @handle.on_turn
    async def sleepy(u: Utterance) -> None:
        await asyncio.sleep(30)

    @handle.on_turn
    def blocking(u: Utterance) -> None:
        time.sleep(1.0)  # runs on a worker thread: cannot freeze the loop

    result = await asyncio.wait_for(handle.done(), 60)  # 30 s sleeps were not waited for
    assert len(result) >= 3
    for u in result:
        # one budget per utterance: `sleepy` used it up, so `blocking` is not run at all
        assert u.handler_errors == [
            "sleepy: timed out, the 0.3 s for this utterance's handlers ran out",
            "blocking: not run, the 0.3 s for this utterance's handlers ran out",
        ]
    assert handle.handlers.stats["sleepy"].timeouts == len(result)
    await handle.stop()


async def test_the_speech_model_and_decoding_never_run_on_the_kernel_loop(local_stt, monkeypatch):
    """What keeps the kernel responsive while transcribing: model work happens on other
    threads. (How responsive, in milliseconds, is measured in benchmarks/, not asserted.)"""
    from stt_agent.engines import load_whisper

    loop_thread = threading.get_ident()
    decode_threads: set[int] = set()
    loaded = load_whisper(local_stt.model)
    decode = loaded.decoder  # the public seam: what the model's thread runs on each batch

    def watched(*args, **kwargs):
        decode_threads.add(threading.get_ident())
        return decode(*args, **kwargs)

    monkeypatch.setattr(loaded, "decoder", watched)
    clip = samples.path("librispeech_2412")  # 11.7 s
    handle = await stt_agent.start_local(clip, realtime=True, stt=local_stt)
    result = await asyncio.wait_for(handle.done(), 60)
    await handle.stop()
    assert result and decode_threads
    assert loop_thread not in decode_threads


async def test_five_start_stop_cycles_leave_nothing_behind(jfk, local_stt):
    async def cycle() -> None:
        handle = await stt_agent.start_local(jfk, realtime=True, stt=local_stt)
        await handle.wait_ready(timeout=10)
        await asyncio.sleep(0.7)
        await asyncio.wait_for(handle.stop(), 30)  # bounded by design; this only guards a hang
        assert handle.status.state == "stopped"

    await cycle()  # warm-up: lazily created pools (model, VAD, handler threads) exist now
    await asyncio.sleep(0.2)
    threads_before = {t.ident for t in threading.enumerate()}
    tasks_before = asyncio.all_tasks()
    for _ in range(5):
        await cycle()
    await asyncio.sleep(0.5)
    new_threads = [t for t in threading.enumerate() if t.ident not in threads_before]
    # The loop's default executor grows its pool of idle workers ("asyncio_N") lazily under
    # load and reuses them; they are bounded by the pool size, not one per cycle.
    pool = [t for t in new_threads if t.name.startswith("asyncio_")]
    leftover_threads = [t for t in new_threads if t not in pool]
    assert len(pool) <= min(32, (os.cpu_count() or 1) + 4)
    leftover_tasks = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert not leftover_threads, leftover_threads
    assert not leftover_tasks, leftover_tasks


async def test_starting_again_stops_the_previous_agent(jfk, local_stt):
    first = await stt_agent.start_local(jfk, realtime=True, stt=local_stt)
    await first.wait_ready(timeout=10)
    assert current_agent() is first
    second = await stt_agent.start_local(jfk, realtime=True, stt=local_stt)
    # one agent at a time, and the replaced one says why it stopped
    assert first.status.state == "stopped" and first.status.detail == REPLACED
    assert "replaced: a new agent was started" in str(first.status)
    assert current_agent() is second and second.running
    await second.stop()
    assert second.status.state == "stopped" and second.status.detail == ""  # asked to stop
    assert current_agent() is None


async def test_a_start_that_cannot_work_leaves_the_running_agent_alone(jfk, local_stt):
    first = await stt_agent.start_local(jfk, realtime=True, stt=local_stt)
    await first.wait_ready(timeout=10)
    with pytest.raises(stt_agent.ConfigError, match="unknown engine 'nope'"):
        await stt_agent.start_local(jfk, engine="nope")
    assert first.running and current_agent() is first
    await first.stop()


async def test_a_failed_start_raises_the_kits_own_error(jfk, tmp_path):
    # an empty folder is not a CTranslate2 model: loading fails without any network
    handle = await stt_agent.start_local(jfk, stt=LocalSTT(model=str(tmp_path)))
    with pytest.raises(stt_agent.ModelError, match="cannot load the speech model"):
        await handle.wait_ready(timeout=60)
    assert handle.status.state == "error"
    assert handle.status.error.startswith("ModelError: cannot load the speech model")
    await handle.stop()
    assert handle.status.state == "error"  # stopping keeps the error visible


async def test_events_from_other_threads_reach_widgets_only_via_the_loop():
    feed = TranscriptFeed()
    feed.bind()
    view = TranscriptView(feed)
    main_thread = threading.get_ident()

    def produce() -> None:
        feed.publish(Utterance(text="from a job thread", final=True))
        # nothing has been rendered yet: the event waits for the kernel loop
        assert "from a job thread" not in view._list.value

    worker = threading.Thread(target=produce)
    worker.start()
    worker.join()
    await asyncio.sleep(0.05)
    assert "from a job thread" in view._list.value
    assert view.render_thread_ids == {main_thread}


async def test_transcript_view_is_bounded(local_stt):
    feed = TranscriptFeed(history=1000)
    feed.bind()
    view = TranscriptView(feed, max_rows=50)
    for i in range(400):
        feed.publish(Utterance(text=f"utterance {i}", final=True))
    assert view._list.value.count("class='stt-row'") == 50
    assert "utterance 399" in view._list.value and "utterance 349" not in view._list.value
    assert len(feed.utterances) == 400


def test_start_local_rejects_what_is_not_audio():
    with pytest.raises(TypeError, match="cannot use dict as audio"):
        asyncio.run(stt_agent.start_local({"not": "audio"}))
