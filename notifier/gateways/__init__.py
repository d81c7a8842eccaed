"""Gateways: each turns its own verified callback into a `Payment`.

An adapter module has `NAME`, `configured(settings)`, `check(raw, header_of,
settings, now)`, `parse_webhook(event)` (None for events the shop ignores)
and `parse_return(params, settings, http)` -> (Payment or None, reference).
The service's own scheme (`generic`) keeps its routes without the name.
"""

from notifier.gateways import stripe

ADAPTERS = {stripe.NAME: stripe}
