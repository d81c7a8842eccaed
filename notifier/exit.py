"""Stopping the service when the interpreter exits without our main().

`concurrent.futures` joins its workers, with no deadline, before `atexit`
functions run; so the drain is registered with threading's own exit hooks,
which run first (last registered, first run), and `atexit` is the fallback.
"""

import atexit
import logging
import os
import threading

log = logging.getLogger("server")


def stop_at_exit(service):
    def stop():
        if service.stop():
            logging.shutdown()
            os._exit(0)

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(stop)
    atexit.register(stop)
