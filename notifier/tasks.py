"""Named after-response tasks, run by id from the outbox.

A task is a function `(notification, context) -> provider id`. It raises
TransientError to be tried again later and PermanentError to give up.
"""

from notifier.errors import PermanentError


class TaskRegistry:
    def __init__(self):
        self._tasks = {}

    def task(self, kind):
        """Decorator registering a function under `kind`."""

        def register(func):
            if kind in self._tasks:
                raise ValueError(f"task {kind!r} is registered twice")
            self._tasks[kind] = func
            return func

        return register

    def get(self, kind):
        try:
            return self._tasks[kind]
        except KeyError:
            raise PermanentError(f"no task is registered as {kind!r}") from None

    def __contains__(self, kind):
        return kind in self._tasks


registry = TaskRegistry()
