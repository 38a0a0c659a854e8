"""Ctrl-C during ``fit``: deferred to the next point where the model is consistent.

A compiled training call cannot be interrupted, and a ``KeyboardInterrupt``
raised between the call and the bookkeeping after it (the optimizer's step
count, the epoch's loss) would leave the weights ahead of ``iterations``.  So
while ``fit`` changes the model, SIGINT is only recorded, and ``fit`` delivers
it (calls the handler it replaced, which by default raises
``KeyboardInterrupt``) once the bookkeeping of the chunk of batches is done.
Code that changes nothing in the model (user callbacks, validation, metrics)
runs with SIGINT delivered at once, as without fastnet, so Ctrl-C also stops a
callback that hangs.
"""
import signal
import threading

__all__ = ["SigintGuard"]


class SigintGuard:
    """Context manager: SIGINT is recorded, not delivered, except in ``call``
    and at ``poll``.

    Installed only in the main thread (the only one Python runs signal handlers
    in) and only over a Python-level handler: ``SIG_IGN``, ``SIG_DFL`` and a
    handler set from C are left alone.  The replaced handler is put back on
    exit, also when an exception leaves the block; a signal still pending then
    is delivered after the restore, unless an exception is already on its way.
    Elsewhere (another thread, no Python handler) every method is a plain call.
    """

    __slots__ = ("_prev", "_pending", "_defer")

    def __init__(self):
        self._prev = None
        self._pending = False
        self._defer = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            prev = signal.getsignal(signal.SIGINT)
            if callable(prev):
                self._prev = prev
                signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, exc_type, exc, tb):
        prev = self._prev
        if prev is None:
            return False
        signal.signal(signal.SIGINT, prev)
        self._prev = None
        if self._pending:
            self._pending = False
            if exc_type is None:
                prev(signal.SIGINT, None)
        return False

    @property
    def installed(self):
        return self._prev is not None

    def _handler(self, signum, frame):
        if self._defer:
            self._pending = True
        else:
            self._prev(signum, frame)

    def poll(self):
        """Deliver a SIGINT recorded since the last delivery (raises
        KeyboardInterrupt under the default handler)."""
        if self._pending:
            self._pending = False
            self._prev(signal.SIGINT, None)

    def call(self, fn, *args):
        """``fn(*args)`` with SIGINT delivered at once (and one recorded before
        delivered first)."""
        if self._prev is None:
            return fn(*args)
        try:
            self._defer = False
            self.poll()
            return fn(*args)
        finally:
            self._defer = True
