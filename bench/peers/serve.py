"""`python -m bench.peers.serve NAME`: one peer's app, on waitress.

The peer's module is imported under its own name (never as `__main__`), so
the app and a worker beside it name their tasks alike.
"""

import importlib
import sys

from bench.peers.shop import serve

MODULES = {
    "inline": "bench.peers.inline",
    "thread_pool": "bench.peers.thread_pool",
    "huey": "bench.peers.huey_queue",
    "celery": "bench.peers.celery_queue",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in MODULES:
        print(f"usage: python -m bench.peers.serve {{{','.join(MODULES)}}}")
        return 2
    return serve(importlib.import_module(MODULES[argv[0]]).hand_off)


if __name__ == "__main__":
    sys.exit(main())
