"""Tasks whose first step runs at once, in the caller's turn of the event loop: Python 3.12's eager tasks, on 3.11.

A task's first step otherwise waits for the loop's next turn, behind whatever else is ready then and, for a task
made in a callback that read a socket, behind the rest of what that read found: under load about a third of a
millisecond each time. A relayed call waited twice so (its application's task, then its upstream call's) before
its request went upstream. The step runs as the task's own: the task is the current one (for `asyncio.timeout`
and the like) and the step runs in the task's context. What the step ends on (the future it waits for, its result
or exception) is what the task's first scheduled step takes.
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
        raise outcome

    def throw(self, *args: Any) -> Any:  # a task cancelled before it took the first step's outcome: as Python would
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
    begun = _Begun(coro)
    task = loop.create_task(begun, context=context)
    current = tasks._current_tasks
    previous = current.get(loop)
    current[loop] = task
    try:
        begun.outcome, begun.kind = context.run(coro.send, None), _YIELDED
    except StopIteration as stop:
        begun.outcome, begun.kind = stop.value, _RETURNED
    except (KeyboardInterrupt, SystemExit) as exc:
        begun.outcome, begun.kind = exc, _RAISED
        raise
    except BaseException as exc:
        begun.outcome, begun.kind = exc, _RAISED
    finally:
        if previous is None:
            current.pop(loop, None)
        else:
            current[loop] = previous
    return task
