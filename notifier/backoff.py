"""When to try again: exponential backoff with full jitter."""

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

# A Retry-After longer than the backoff cap is still honoured, up to this.
RETRY_AFTER_LIMIT = 3600.0


def retry_delay(attempts, base, cap, retry_after=None, rand=random.random):
    """Seconds to wait after the `attempts`-th failed attempt.

    Full jitter (a uniform draw below the exponential ceiling) spreads the
    retries of many rows that failed together; a server's Retry-After is a
    floor, never shortened by the draw.
    """
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    delay = rand() * ceiling
    if retry_after is not None:
        delay = max(delay, min(float(retry_after), max(cap, RETRY_AFTER_LIMIT)))
    return delay


def parse_retry_after(value):
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
