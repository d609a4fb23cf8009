"""Awaiting a condition that has no event of its own, with a deadline that fails the test by name.

Prefer what the code under test offers (an event, `await recorder.flush()`, an injected clock). This is for what
only shows from outside: a child process's port answering, a row becoming visible to another engine, a process
gone. The poll interval only paces the checks; the deadline bounds the wait, and a condition that turns true
early ends it early.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def wait_for(condition: Callable[[], Awaitable[T]], timeout: float, *, what: str, interval: float = ...) -> T: ...
@overload
async def wait_for(condition: Callable[[], T], timeout: float, *, what: str, interval: float = ...) -> T: ...


async def wait_for(condition: Callable[[], Any], timeout: float, *, what: str, interval: float = 0.02) -> Any:
    """Call `condition` (plain or async) until it returns a truthy value, and return that value.

    Raises AssertionError naming `what` when `timeout` seconds pass first, also while a check is still pending.
    """
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            while True:
                value = condition()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await asyncio.sleep(interval)
    except TimeoutError:
        if not deadline.expired():
            raise  # the condition's own timeout, not ours
        raise AssertionError(f"waited {timeout} s for {what}") from None
