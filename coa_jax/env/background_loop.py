"""An asyncio event loop in a daemon thread, so sync code can drive async code.

Blocking entry points (`RetrievalClient.call`, `ToolRegistry.run`) must work whether or not the
calling thread already runs an event loop; running the coroutine on a private loop in another
thread is the one way that holds in both cases.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """A private event loop running in a daemon thread (started on first use).

    Args:
      name: the thread's name.
    """

    def __init__(self, name: str = "coa-env-loop"):
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main():
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=main, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Runs `coro` on the loop and blocks until it finishes.

        Raises:
          RuntimeError: when called from the loop's own thread (it would deadlock).
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("BackgroundLoop.run called from its own loop thread; await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Starts `coro` on the loop and returns at once with a future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Awaits `coro` run on this loop, from any other loop (or this one)."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        """Cancels what is pending, stops the loop and joins the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return

        async def cancel_pending():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if thread is not threading.current_thread():
            asyncio.run_coroutine_threadsafe(cancel_pending(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
        else:
            loop.call_soon(loop.stop)


_shared = BackgroundLoop("coa-env-shared-loop")


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Runs `coro` to completion from sync code, on a shared background loop."""
    return _shared.run(coro, timeout)


def submit(coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
    """Starts `coro` on the shared background loop; returns a future of its result."""
    return _shared.submit(coro)
