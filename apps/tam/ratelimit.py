"""Fixed-window request limits kept in the shared cache ("N/SECONDS" strings in settings).

Abuse control, not quotas: a window may admit slightly more than N under races.

Decision: when the cache is unreachable the limits fail open (the request is counted as
allowed, a warning is logged at most once a minute per process). A rate limit protects the
TAM; it must not become the reason every agent of the fleet is refused while the database,
which holds the tokens and the device state, is fine. The reverse proxy's own limits
(README, "Deployment") still hold during a cache outage.
"""

import logging
import time

from django.core.cache import cache

from apps.ops import metrics
from apps.ops.faults import unavailable_backend

logger = logging.getLogger(__name__)
WARN_EVERY_SECONDS = 60
_last_warning = [0.0]


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
    try:
        added = cache.add(cache_key, 1, timeout=window + 1)
        count = 1 if added else _incr(cache_key)
    except Exception as exc:
        if unavailable_backend(exc) is None:
            raise
        _warn_unenforced(exc)
        metrics.RATELIMIT_UNENFORCED.inc()
        return 0
    if count > limit:
        return max(1, window_start + window - now)
    return 0


def _incr(cache_key: str) -> int:
    try:
        return cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1)
        return 1


def _warn_unenforced(exc: BaseException) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY_SECONDS:
        _last_warning[0] = now
        logger.warning(
            "cache unreachable (%s): rate limits are not enforced", exc.__class__.__name__
        )
