"""Tasks whose first step runs at once (`relay.eager`), on uvloop (the servers' loop) and asyncio's own."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import uvloop

from relay import eager
from relay.eager import eager_task

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
seen = contextvars.ContextVar("seen", default="outside")


@pytest.fixture(params=list(LOOPS))
def run(request):
    def run(scenario):
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(asyncio.wait_for(scenario(), 10))
        finally:
            loop.close()

    return run


def test_the_first_step_runs_before_the_task_is_returned_as_the_current_task_in_its_own_context(run):
    async def scenario():
        steps = []

        async def job():
            steps.append(asyncio.current_task())
            seen.set("inside")
            async with asyncio.timeout(5):  # needs the task to be the current one
                await asyncio.sleep(0)
            steps.append(seen.get())
            return "done"

        me = asyncio.current_task()
        task = eager_task(job())
        assert steps == [task]  # ran already, as the task
        assert asyncio.current_task() is me and seen.get() == "outside"
        assert await task == "done"
        return steps[1]

    assert run(scenario) == "inside"


def test_a_first_step_that_returns_or_raises_is_the_tasks_result_or_exception(run):
    async def scenario():
        async def answer():
            return 42

        async def fail():
            raise ValueError("at once")

        returned, raised = eager_task(answer()), eager_task(fail())
        assert await returned == 42
        with pytest.raises(ValueError, match="at once"):
            await raised
        return True

    assert run(scenario)


def test_a_task_cancelled_before_its_first_scheduled_step_is_cancelled_inside_its_coroutine(run):
    async def scenario():
        cleaned = []

        async def waits():
            try:
                await asyncio.sleep(5)
            finally:
                cleaned.append(True)

        task = eager_task(waits())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled(), cleaned

    assert run(scenario) == (True, [True])


def test_a_task_made_in_a_plain_callback_or_inside_another_task_leaves_the_current_task_as_it_was(run):
    async def scenario():
        loop = asyncio.get_running_loop()
        currents = []

        async def inner():
            currents.append(asyncio.current_task())
            await asyncio.sleep(0)
            return "inner"

        async def outer():
            child = eager_task(inner())
            currents.append(asyncio.current_task())  # this task again, after the child's first step
            return await child

        made = loop.create_future()
        loop.call_soon(lambda: made.set_result(eager_task(outer())))
        task = await made
        assert await task == "inner"
        return currents, task

    currents, task = run(scenario)
    assert currents[1] is task and currents[0] is not task


def test_a_shielded_eager_task_runs_on_when_its_waiter_is_cancelled(run):
    async def scenario():
        async def slow():
            await asyncio.sleep(0.01)
            return "finished"

        inner = eager_task(slow())

        async def waiter():
            return await asyncio.shield(inner)

        outer = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return await inner

    assert run(scenario) == "finished"


@pytest.mark.skipif(eager.NATIVE, reason="Python's own eager tasks are used on 3.12 and later")
def test_the_tasks_repr_names_the_coroutine():
    async def scenario():
        async def named_job():
            await asyncio.sleep(0)

        task = eager_task(named_job())
        text = repr(task)
        await task
        return text

    assert "named_job" in asyncio.run(scenario())


def test_cancelled_before_its_first_scheduled_step_a_finished_task_keeps_its_result_or_exception(run):
    async def scenario():
        async def answer():
            return "answered"

        async def fail():
            raise ValueError("failed at once")

        returned, raised = eager_task(answer()), eager_task(fail())
        returned.cancel(), raised.cancel()  # e.g. a server stopping in the same turn: the answer was already given
        with pytest.raises(ValueError, match="failed at once"):
            await raised
        return await returned

    assert run(scenario) == "answered"


def test_cancelled_before_its_first_scheduled_step_a_task_cancels_what_it_waits_on(run):
    async def scenario():
        async def child():
            await asyncio.sleep(5)

        inner = []

        async def parent():
            inner.append(asyncio.ensure_future(child()))
            await inner[0]

        task = eager_task(parent())
        task.cancel("stopping")
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return inner[0].cancelled()

    assert run(scenario)


def test_a_task_whose_first_step_raised_is_freed_with_its_last_reference_without_the_collector(run):
    async def scenario():
        async def fail():
            raise ValueError("failed at once")

        task = eager_task(fail())
        try:
            await task
        except ValueError:
            pass
        freed = weakref.ref(task)
        del task
        await asyncio.sleep(0)  # the task's done callbacks have run
        return freed

    gc.collect()
    gc.disable()
    try:
        freed = run(scenario)
        assert freed() is None
    finally:
        gc.enable()


@pytest.mark.skipif(eager.NATIVE, reason="Python's own eager tasks are used on 3.12 and later")
def test_a_keyboard_interrupt_in_the_first_step_is_raised_once_by_the_task_on_the_loop():
    script = """
import asyncio
from relay.eager import eager_task

async def interrupted():
    raise KeyboardInterrupt

async def main():
    eager_task(interrupted())  # does not raise here
    print("made")
    await asyncio.sleep(1)

try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["made", "interrupted"], done.stderr
