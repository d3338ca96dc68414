"""Stopping the library's tasks when a cancellation is swallowed (mxgateway/_tasks.py)."""

from __future__ import annotations

import asyncio

from mxgateway._tasks import cancel_and_wait


async def _periodic(swallowed: list[int]) -> None:
    # What the bridge's state saver did: a loop that catches Exception around a call which,
    # as nats-py's requests on Python 3.11 can, turns the cancel it received into a result.
    while True:
        try:
            await asyncio.sleep(0.01)
            if not swallowed:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    swallowed.append(1)
                    raise RuntimeError("the request's result came with the cancel") from None
        except Exception:
            continue


async def test_a_task_that_swallowed_its_cancel_is_cancelled_again() -> None:
    swallowed: list[int] = []
    loop_task = asyncio.create_task(_periodic(swallowed))
    plain = asyncio.create_task(asyncio.sleep(3600))
    finished = asyncio.create_task(asyncio.sleep(0, result=None))
    await asyncio.sleep(0.05)
    async with asyncio.timeout(10):
        results = await cancel_and_wait([loop_task, plain, finished], again_s=0.2)
    assert swallowed == [1]  # the first cancel was lost, and the task still ended
    assert loop_task.cancelled() and plain.cancelled()
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] is None  # finished before the cancel: its result


async def test_a_single_cancel_and_gather_would_wait_forever() -> None:
    # The same task under the old stop: gather after one cancel() does not return.
    swallowed: list[int] = []
    task = asyncio.create_task(_periodic(swallowed))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1.0)
    assert not done and swallowed == [1]
    await cancel_and_wait([task], again_s=0.2)
    assert task.cancelled()


async def test_a_clean_up_shorter_than_the_wait_is_not_cut_short() -> None:
    cleaned: list[str] = []

    async def slow_clean_up() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.5)  # a receiver's join, a call's close
            cleaned.append("done")

    task = asyncio.create_task(slow_clean_up())
    await asyncio.sleep(0)
    await cancel_and_wait([task], again_s=2.0)
    assert cleaned == ["done"] and task.cancelled()


async def test_errors_are_returned_not_raised() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    (result,) = await cancel_and_wait([task])
    assert isinstance(result, ValueError)
