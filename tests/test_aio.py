"""A loop that waits with a timeout must stop when cancelled, even when what it waits for arrives in
the same loop turn as the cancel (Python 3.11's asyncio.wait_for swallows that cancel: gh-86296)."""

from __future__ import annotations

import asyncio

from villagewatch.aio import get_or_timeout, wait_event


async def _loop_until_cancelled(step) -> str:
    while True:
        await step()


async def _cancel_while_ready(step, make_ready) -> bool:
    """Start a waiting loop, then make its awaited thing ready and cancel it in the same turn."""
    task = asyncio.create_task(_loop_until_cancelled(step))
    await asyncio.sleep(0.01)  # let it block in its wait
    for _ in range(20):  # several rounds: each one is a chance to swallow the cancel
        make_ready()
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), 1.0)
        except asyncio.CancelledError:
            return True
        except TimeoutError:
            continue
    return False


def test_wait_event_loop_stops_when_cancelled_as_the_event_is_set():
    event = asyncio.Event()

    async def step():
        await wait_event(event, 0.25)

    async def main():
        return await _cancel_while_ready(step, event.set)

    assert asyncio.run(main())


def test_get_or_timeout_loop_stops_when_cancelled_as_an_item_arrives():
    async def main():
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def step():
            await get_or_timeout(queue, 0.25)
        return await _cancel_while_ready(step, lambda: queue.put_nowait(1))

    assert asyncio.run(main())


def test_timeouts_report_what_happened():
    async def main():
        event = asyncio.Event()
        assert await wait_event(event, 0.01) is False
        event.set()
        assert await wait_event(event, 0.01) is True
        queue: asyncio.Queue[str] = asyncio.Queue()
        assert await get_or_timeout(queue, 0.01) == (False, None)
        queue.put_nowait("x")
        assert await get_or_timeout(queue, 0.01) == (True, "x")

    asyncio.run(main())
