"""The client's address, also behind the reverse proxy the deployment requires (README
"Deployment"): there REMOTE_ADDR is the proxy's own address for every agent, so per-source
rate limits would throttle the whole fleet as one source."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """With CLIENT_IP_PROXY_COUNT = n > 0, the n-th address from the right of X-Forwarded-For
    (each trusted proxy appends the address it saw; anything further left is the client's own
    claim); else, or when the header is short or malformed, REMOTE_ADDR."""
    count = settings.CLIENT_IP_PROXY_COUNT
    if count > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [hop for hop in hops if hop]
        if len(hops) >= count:
            try:
                return str(ipaddress.ip_address(hops[-count]))
            except ValueError:
                pass
    return request.META.get("REMOTE_ADDR") or None
