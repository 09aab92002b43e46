"""Stand-in for polling2 0.5 (PyPI), which no registry here serves: the
one call the Service Binding conformance suite makes, polling2.poll, with
the arguments it passes."""

import time


class TimeoutException(Exception):
    def __init__(self, values, last=None):
        super().__init__(f"timed out; last value: {last!r}")
        self.values = values
        self.last = last


def poll(target, step, timeout=None, check_success=bool, ignore_exceptions=(), **_):
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        try:
            last = target()
            if check_success(last):
                return last
        except ignore_exceptions as e:  # noqa: PERF203 - polling retries by design
            last = e
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutException(None, last)
        time.sleep(step)
