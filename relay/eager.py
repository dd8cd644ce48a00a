"""Tasks whose first step runs at once, in the caller's turn of the event loop: Python 3.12's eager tasks, on 3.11.

A task's first step otherwise waits for the loop's next turn, behind whatever else is ready then and, for a task
made in a callback that read a socket, behind the rest of what that read found: under load about a third of a
millisecond each time. A relayed call waited twice so (its application's task, then its upstream call's) before
its request went upstream. The step runs as the task's own: the task is the current one (for `asyncio.timeout`
and the like) and the step runs in the task's context. What the step ends on (the future it waits for, its result
or exception) is what the task's first scheduled step takes. On 3.11 the current task is set in asyncio's own table
(`asyncio.tasks._current_tasks`, what 3.12's `_swap_current_task` sets), restored after the step.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import sys
from asyncio import tasks
from typing import Any, Coroutine

_YIELDED, _RETURNED, _RAISED = 1, 2, 3
NATIVE = sys.version_info >= (3, 12)


class _Begun(collections.abc.Coroutine):
    """A coroutine whose first step has run: the task's first step gets what that step produced, the next ones go
    to the coroutine."""

    def __init__(self, coro: Coroutine) -> None:
        self.coro = coro
        self.__name__ = self.__qualname__ = getattr(coro, "__qualname__", type(coro).__name__)  # the task's repr
        self.kind = 0  # how the first step ended, until the task has taken it
        self.outcome: Any = None

    def send(self, value: Any) -> Any:
        kind = self.kind
        if not kind:
            return self.coro.send(value)
        outcome, self.kind, self.outcome = self.outcome, 0, None
        if kind == _YIELDED:
            return outcome
        if kind == _RETURNED:
            raise StopIteration(outcome)
        try:
            raise outcome
        finally:
            del outcome  # no cycle through this frame

    def throw(self, *args: Any) -> Any:
        """The task cancelled before it took the first step's outcome (a task throws nothing else), as if it had:
        a finished step keeps its result or exception; a step waiting on a future has the future cancelled."""
        kind = self.kind
        if kind == _YIELDED and isinstance(self.outcome, asyncio.Future):
            cancelled = args[0] if args and isinstance(args[0], BaseException) else None
            message = cancelled.args[0] if cancelled is not None and cancelled.args else None
            if self.outcome.cancel(message):
                return self.send(None)  # the task waits on it, and the coroutine hears of the cancelling from it
        if kind in (_RETURNED, _RAISED):
            return self.send(None)
        self.kind, self.outcome = 0, None
        return self.coro.throw(*args)

    def close(self) -> None:
        self.kind, self.outcome = 0, None
        self.coro.close()

    def __await__(self) -> Any:
        raise TypeError("a task's coroutine is not awaited")

    @property
    def cr_frame(self) -> Any:  # for the task's stack and repr
        return getattr(self.coro, "cr_frame", None)

    @property
    def cr_code(self) -> Any:
        return getattr(self.coro, "cr_code", None)

    @property
    def cr_running(self) -> bool:
        return bool(getattr(self.coro, "cr_running", False))


def eager_task(coro: Coroutine, *, loop: asyncio.AbstractEventLoop | None = None,
               context: contextvars.Context | None = None) -> asyncio.Task:
    """A task for `coro`, its first step run now (as the current task, in the task's context: a copy of the
    caller's unless given)."""
    loop = loop or asyncio.get_running_loop()
    context = contextvars.copy_context() if context is None else context
    if NATIVE:
        return asyncio.Task(coro, loop=loop, context=context, eager_start=True)  # type: ignore[call-arg]
    if not loop.is_running():  # as Python's own: the first step on the loop's first turn
        return loop.create_task(coro, context=context)
    begun = _Begun(coro)
    task = loop.create_task(begun, context=context)
    current = tasks._current_tasks
    previous = current.get(loop)
    current[loop] = task
    try:
        begun.outcome, begun.kind = context.run(coro.send, None), _YIELDED
    except StopIteration as stop:
        begun.outcome, begun.kind = stop.value, _RETURNED
    except BaseException as exc:  # KeyboardInterrupt and SystemExit too: raised once, by the task, as they would be
        # kept without this frame in its traceback: the frame holds the task, and the cycle would keep both alive
        begun.outcome, begun.kind = exc.with_traceback(exc.__traceback__.tb_next), _RAISED
    finally:
        if previous is None:
            current.pop(loop, None)
        else:
            current[loop] = previous
    return task
