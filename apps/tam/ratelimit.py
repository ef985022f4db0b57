"""Fixed-window request limits kept in the shared cache ("N/SECONDS" strings in settings).

Abuse control, not quotas: a window may admit slightly more than N under races.
"""

import time

from django.core.cache import cache


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, seconds = rate.partition("/")
    return int(count), int(seconds or 60)


def check_rate(key: str, rate: str) -> int:
    """Count one request for `key`; return 0 if allowed, else seconds until the window ends."""
    limit, window = parse_rate(rate)
    if limit <= 0:
        return 0
    now = int(time.time())
    window_start = now - now % window
    cache_key = f"teep-rate:{key}:{window_start}"
    added = cache.add(cache_key, 1, timeout=window + 1)
    count = 1 if added else _incr(cache_key)
    if count > limit:
        return max(1, window_start + window - now)
    return 0


def _incr(cache_key: str) -> int:
    try:
        return cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1)
        return 1
