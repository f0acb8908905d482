"""OwnedTasks: tasks kept until done, failures logged once, close cancels and waits for the rest."""

from __future__ import annotations

import asyncio
import logging
import uuid
import warnings

import pytest

from agent_studio.core.tasks import OwnedTasks


async def test_a_finished_task_is_let_go_with_its_result() -> None:
    tasks = OwnedTasks("test owner")
    release = asyncio.Event()

    async def answer() -> int:
        await release.wait()
        return 42

    task = tasks.spawn(answer(), name="answer")
    assert len(tasks) == 1 and task in tasks and task.get_name() == "answer"
    release.set()
    assert await task == 42
    await asyncio.sleep(0)  # done callbacks run on the next loop step
    assert len(tasks) == 0 and task not in tasks


async def test_a_failure_is_logged_once_with_the_label_and_call_id_and_spares_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call_id = uuid.uuid4()
    tasks = OwnedTasks("test owner", call_id=call_id)
    sibling_may_finish = asyncio.Event()

    async def fail() -> None:
        raise RuntimeError("broken")

    async def sibling() -> str:
        await sibling_may_finish.wait()
        return "still here"

    other = tasks.spawn(sibling())
    failing = tasks.spawn(fail())
    with caplog.at_level(logging.DEBUG):
        await asyncio.wait([failing])
        await asyncio.sleep(0)
        assert not other.done()  # a failure does not cancel the owner's other tasks
        sibling_may_finish.set()
        assert await other == "still here"
        await tasks.close()  # nor is it raised, or logged again, at close
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    record = errors[0]
    assert record.levelno == logging.ERROR
    assert "test owner" in record.getMessage()
    assert getattr(record, "call_id", None) == str(call_id)
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert len(tasks) == 0


async def test_close_cancels_every_task_and_waits_for_its_cleanup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = OwnedTasks("test owner")
    cleaned: list[int] = []

    async def forever(number: int) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself takes a while
            cleaned.append(number)

    spawned = [tasks.spawn(forever(n)) for n in range(3)]
    await asyncio.sleep(0)
    with caplog.at_level(logging.DEBUG):
        await tasks.close()
    assert sorted(cleaned) == [0, 1, 2]
    assert all(task.cancelled() for task in spawned)
    assert len(tasks) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # cancels are quiet


async def test_close_from_one_of_its_own_tasks_leaves_that_task_running() -> None:
    tasks = OwnedTasks("test owner")
    other_cleaned = asyncio.Event()
    closer_went_on = asyncio.Event()

    async def other() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)
            other_cleaned.set()

    async def closer() -> str:
        await asyncio.sleep(0)
        await tasks.close()
        # Not cancelled, and only back once the others are done.
        assert other_cleaned.is_set()
        await asyncio.sleep(0.01)
        closer_went_on.set()
        return "closed"

    sibling = tasks.spawn(other())
    closing = tasks.spawn(closer())
    assert await asyncio.wait_for(closing, 2) == "closed"
    assert closer_went_on.is_set() and sibling.cancelled()


async def test_a_second_close_waits_without_cancelling_again() -> None:
    tasks = OwnedTasks("test owner")
    cleanup_started = asyncio.Event()
    cleanup_finished = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleanup_started.set()
            await asyncio.sleep(0.05)  # a second cancel would interrupt this
            cleanup_finished.set()
            raise

    tasks.spawn(slow_cleanup())
    await asyncio.sleep(0)
    first = asyncio.create_task(tasks.close())
    await cleanup_started.wait()
    await asyncio.wait_for(tasks.close(), 2)
    assert cleanup_finished.is_set()
    await first
    await tasks.close()  # and a third, once all is done, returns at once
    assert tasks.closed


async def test_a_task_being_closed_may_ask_to_close_again_without_a_deadlock() -> None:
    # The peer's shape: its end() runs as one of its tasks and closes the peer, and a task being
    # cancelled by that close may ask for the close too.
    tasks = OwnedTasks("test owner")
    asked = asyncio.Event()

    async def closes_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await tasks.close()
            asked.set()

    async def end() -> None:
        await asyncio.sleep(0)
        await tasks.close()

    tasks.spawn(closes_on_cancel())
    ending = tasks.spawn(end())
    await asyncio.wait_for(ending, 2)
    assert asked.is_set()
    await asyncio.sleep(0)
    assert len(tasks) == 0


async def test_cancel_then_close_from_an_own_task_waits_for_the_others() -> None:
    # The peer's close: cancel its tasks, close the connection, then wait for the tasks.
    tasks = OwnedTasks("test owner")
    other_cleaned = asyncio.Event()
    seen_between: list[bool] = []

    async def other() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.02)
            other_cleaned.set()

    async def end() -> None:
        await asyncio.sleep(0)
        tasks.cancel()
        late = tasks.spawn(asyncio.sleep(0))
        await asyncio.sleep(0)  # the owner's own work in between
        seen_between.append(other_cleaned.is_set())
        await tasks.close()
        assert other_cleaned.is_set() and late.cancelled()

    sibling = tasks.spawn(other())
    await asyncio.wait_for(tasks.spawn(end()), 2)
    assert seen_between == [False] and sibling.cancelled()


async def test_a_task_spawned_after_close_never_runs() -> None:
    tasks = OwnedTasks("test owner")
    await tasks.close()
    ran = False

    async def late() -> None:
        nonlocal ran
        ran = True

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        task = tasks.spawn(late(), name="late")
        await asyncio.wait([task])
    assert task.cancelled() and not ran
    await asyncio.sleep(0)
    assert len(tasks) == 0
