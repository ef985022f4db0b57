"""Readable summaries of agent runs, for the management commands (no Django)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from .agent import PolicyCheckResult


def describe_result(result: PolicyCheckResult) -> list[str]:
    lines = [f"RequestPolicyCheck {result.tam_uri} ({result.numbering})"]
    for index, exchange in enumerate(result.exchanges, 1):
        got = exchange.received or ("nothing" if exchange.http_status == 204 else "-")
        status = exchange.http_status if exchange.http_status is not None else "no answer"
        lines.append(
            f"  {index}. sent {exchange.sent:<14} HTTP {status}  got {got:<14}"
            f" {exchange.latency * 1000:7.1f} ms"
            + (f"  ({exchange.note})" if exchange.note else "")
        )
    for text in result.installed:
        lines.append(f"  installed {text}")
    for text in result.removed:
        lines.append(f"  removed   {text}")
    for error in result.tam_errors:
        lines.append(f"  TAM reported {error['err_name']}: {error.get('err_msg') or ''}")
    for failure in result.failures:
        lines.append(f"  FAILED    {failure}")
    if result.ok:
        lines.append("  done" if not result.failures else "  done, with failures")
    else:
        retry = f" (retry after {result.retry_after} s)" if result.retry_after is not None else ""
        lines.append(f"  error: {result.error}{retry}")
    return lines


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def fleet_summary(results: Iterable[PolicyCheckResult]) -> dict:
    results = list(results)
    latencies = [e.latency for r in results for e in r.exchanges if e.http_status in (200, 204)]
    statuses = Counter(str(e.http_status or "no answer") for r in results for e in r.exchanges)
    return {
        "policy_checks": len(results),
        "ok": sum(1 for r in results if r.ok and not r.failures),
        "exchanges": sum(len(r.exchanges) for r in results),
        "installs": sum(len(r.installed) for r in results),
        "removals": sum(len(r.removed) for r in results),
        "failures": sum(len(r.failures) or (0 if r.ok else 1) for r in results),
        "http_statuses": dict(sorted(statuses.items())),
        "latency_ms": {
            name: round(percentile(latencies, fraction) * 1000, 1)
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "errors": dict(Counter(r.error for r in results if r.error).most_common(5)),
    }
