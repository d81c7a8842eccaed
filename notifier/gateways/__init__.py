"""Gateways: each turns its own verified callback into a `Payment`.

Each adapter module follows `notifier.gateways.base`. The service's own
scheme (`generic`) keeps its routes without a name (/payments/webhook).
"""

import importlib

NAMES = ("stripe", "paymob", "moyasar", "tap", "myfatoorah")


def _load():
    adapters = {}
    for name in NAMES:
        try:
            adapters[name] = importlib.import_module(f"notifier.gateways.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"notifier.gateways.{name}":
                raise
    return adapters


ADAPTERS = _load()
