"""Turn-handler isolation: stuck, exiting, slow and badly-returning handlers never leak out.

No test here measures time: a stuck handler waits on an Event that is only set when the test
ends, so it is stuck on any machine, however busy.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from stt_agent import TranscriptFeed, TurnHandlers, Utterance, redact
from tests.cli import REPO, clean_env


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test, so the 'stuck' threads of this test do end."""
    event = threading.Event()
    yield event
    event.set()


def utterance(text: str = "call me at 555 123 4567 please") -> Utterance:
    return Utterance(text=text, final=True, start=0.0, end=2.0)


async def test_a_stuck_sync_handler_does_not_hold_up_a_later_agent(release):
    first = TurnHandlers(timeout_s=0.2)

    @first.add
    def stuck(u: Utterance) -> None:
        release.wait()

    # More utterances than the old shared pool had threads (4): each one used to tie up one.
    results = await asyncio.gather(*(first.run(utterance()) for _ in range(6)))
    timed_out = [u for u in results if u.handler_errors[0].startswith("stuck: timed out")]
    held_back = [u for u in results if "still running from an earlier utterance" in str(u)]
    assert timed_out and all(len(u.handler_errors) == 1 for u in results)
    assert first.stats["stuck"].timeouts == len(timed_out)

    # The stuck call is still running: the next utterance does not start another one...
    later = await first.run(utterance())
    assert later.handler_errors == [
        "stuck: not run, still running from an earlier utterance (stuck?)"
    ]
    assert first.stats["stuck"].skipped == len(held_back) + 1
    # ...but a fixed version under the same name runs at once.
    first.add(lambda u: {"fixed": True}, name="stuck")
    fixed = await first.run(utterance())
    assert fixed.annotations == {"fixed": True} and not fixed.handler_errors

    # A second agent has its own threads: its handlers work while the first agent's are stuck.
    second = TurnHandlers(timeout_s=30)
    second.add(redact())
    second.add(lambda u: {"words": len(u.text.split())}, name="count")
    done = await asyncio.gather(*(second.run(utterance()) for _ in range(8)))
    for u in done:
        assert u.handler_errors == []
        assert u.text == "call me at ████████████ please"
        assert u.annotations == {"words": 5}
    first.close()
    second.close()


def test_a_stuck_handler_does_not_keep_the_process_alive():
    script = textwrap.dedent(
        """
        import asyncio, threading, time
        from stt_agent import TurnHandlers, Utterance

        handlers = TurnHandlers(timeout_s=0.1)
        handlers.add(lambda u: time.sleep(10**6), name="sleeper")
        u = asyncio.run(handlers.run(Utterance(text="hello", final=True)))
        stuck = [t.name for t in threading.enumerate() if t.name.startswith("stt-agent-handler")]
        print(u.handler_errors[0].split(",")[0], len(stuck))
        """
    )
    # Without daemon threads the interpreter would wait for the sleeper, and this would hang
    # until the generous timeout below turned it into a failure.
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sleeper:", "timed", "out", "1"]


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
async def test_system_exit_and_keyboard_interrupt_are_recorded_like_any_error(error):
    handlers = TurnHandlers()

    def plain(u: Utterance) -> None:
        raise error

    async def coroutine(u: Utterance) -> None:
        raise error

    handlers.add(plain)
    handlers.add(coroutine)
    handlers.add(lambda u: u.text.upper(), name="upper")
    u = await handlers.run(utterance("still here"))
    expected = "SystemExit: 3" if isinstance(error, SystemExit) else "KeyboardInterrupt"
    assert u.handler_errors == [f"plain: {expected}", f"coroutine: {expected}"]
    assert u.text == "STILL HERE"  # the next handler ran, the process did not end
    assert handlers.stats["plain"].errors == handlers.stats["coroutine"].errors == 1
    handlers.close()


async def test_return_values_are_checked_when_returned_so_exports_never_fail():
    handlers = TurnHandlers()

    def generator(u: Utterance):
        yield u.text

    async def async_generator(u: Utterance):
        yield u.text

    handlers.add(generator)
    handlers.add(lambda u: {"when": datetime.datetime.now()}, name="timestamp")
    handlers.add(lambda u: ["a", "list"], name="listing")
    handlers.add(lambda u: {"ok": (1, 2), "nested": {"n": 1.5}}, name="fine")

    @handlers.add
    def by_hand(u: Utterance) -> None:  # bypasses the return value: exports cope anyway
        u.annotations["lock"] = threading.Lock()

    feed = TranscriptFeed()
    u = await handlers.run(utterance("hello"))
    handlers.add(async_generator)
    v = await handlers.run(utterance("again"))
    feed.publish(u)
    feed.publish(v)

    assert u.handler_errors[:3] == [
        "generator: returned a generator; a handler returns None, a str (new text) or a dict "
        "of JSON values (annotations)",
        "timestamp: returned a dict that JSON cannot hold "
        "(Object of type datetime is not JSON serializable)",
        "listing: returned a list; a handler returns None, a str (new text) or a dict of JSON "
        "values (annotations)",
    ]
    assert v.handler_errors[-1].startswith("async_generator: returned an async_generator;")
    assert u.annotations["ok"] == [1, 2]  # stored as JSON has it
    assert u.text == "hello"
    lines = [json.loads(line) for line in feed.to_jsonl().splitlines()]
    assert [line["text"] for line in lines] == ["hello", "again"]
    assert lines[0]["annotations"]["nested"] == {"n": 1.5}
    assert lines[0]["annotations"]["lock"].startswith("<unlocked _thread.lock")
    handlers.close()


async def test_handlers_of_one_utterance_share_one_timeout_and_keep_their_order(release):
    handlers = TurnHandlers(timeout_s=0.3)
    seen: list[str] = []
    handlers.add(redact())
    handlers.add(lambda u: seen.append(u.text), name="reader")  # sees the redacted text

    @handlers.add
    def slow(u: Utterance) -> None:
        release.wait()

    @handlers.add
    async def slower(u: Utterance) -> None:
        await asyncio.Event().wait()

    u = await handlers.run(utterance())
    assert seen == ["call me at ████████████ please"]
    # `slow` used up the utterance's budget; `slower` was not given a second one.
    assert u.handler_errors == [
        "slow: timed out, the 0.3 s for this utterance's handlers ran out",
        "slower: not run, the 0.3 s for this utterance's handlers ran out",
    ]
    assert handlers.stats["slower"].skipped == 1 and handlers.stats["slower"].calls == 0

    # Without the stuck one, the async handler gets the budget, times out and is cancelled.
    handlers.remove("slow")
    v = await handlers.run(utterance())
    assert v.handler_errors == [
        "slower: timed out, the 0.3 s for this utterance's handlers ran out"
    ]
    handlers.close()


async def test_close_abandons_running_handlers_at_once(release):
    handlers = TurnHandlers(timeout_s=3600)
    started = threading.Event()
    cancelled = asyncio.Event()

    @handlers.add
    async def waits(u: Utterance) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handlers.add(lambda u: None, name="after")
    run = asyncio.create_task(handlers.run(utterance()))
    await asyncio.to_thread(started.wait)
    handlers.close()
    u = await asyncio.wait_for(run, 60)  # a hang guard, not a timing assertion
    assert u.handler_errors == [
        "waits: abandoned, the agent stopped",
        "after: not run, the agent stopped",
    ]
    await asyncio.wait_for(cancelled.wait(), 60)

    # The registry stays usable after close(): a later run starts new threads.
    handlers.remove("waits")
    handlers.add(lambda u: {"again": True}, name="after")
    assert (await handlers.run(utterance())).annotations == {"again": True}
    handlers.close()


def test_close_reaches_runs_on_other_threads_loops(release):
    """Room mode: jobs run the shared handlers on their own threads and loops."""
    handlers = TurnHandlers(timeout_s=3600)
    started = threading.Barrier(3)

    @handlers.add
    def stuck(u: Utterance) -> None:
        started.wait()
        release.wait()

    results: list[Utterance] = []

    def job() -> None:
        results.append(asyncio.run(handlers.run(utterance())))

    jobs = [threading.Thread(target=job) for _ in range(2)]
    for t in jobs:
        t.start()
    started.wait()  # both calls are inside the handler
    handlers.close()
    for t in jobs:
        t.join(60)
    assert [u.handler_errors for u in results] == [["stuck: abandoned, the agent stopped"]] * 2


async def test_close_leaves_no_idle_thread_behind():
    before = set(threading.enumerate())
    handlers = TurnHandlers()
    handlers.add(lambda u: {"n": len(u.text)}, name="length")
    done = await asyncio.gather(*(handlers.run(utterance()) for _ in range(5)))
    assert all(u.annotations == {"n": 30} for u in done)
    started = [t for t in threading.enumerate() if t not in before]
    assert started and all(t.daemon and t.name.startswith("stt-agent-handler") for t in started)
    handlers.close()
    assert [t for t in started if t.is_alive()] == []
