"""Writing the audit trail. Callers run these inside their own transaction, so an action and
its audit row commit (or roll back) together."""

from __future__ import annotations

from typing import Any

from apps.audit.models import AuditEvent
from apps.ops import metrics
from apps.ops.clientip import client_ip


def _client_ip(request) -> str | None:
    if request is None:
        return None
    return client_ip(request)


def record_operator_action(
    *,
    actor,
    action: str,
    obj=None,
    outcome: str = "ok",
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    device_kid: str = "",
    request=None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    payload = dict(detail or {})
    if before is not None:
        payload["before"] = before
    if after is not None:
        payload["after"] = after
    return AuditEvent.objects.create(
        kind=AuditEvent.Kind.OPERATOR_ACTION,
        action=action,
        outcome=outcome,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "get_username", lambda: str(actor or ""))(),
        device_kid=device_kid,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        reason=reason,
        detail=payload,
        source_ip=_client_ip(request),
    )


def record_exchange(
    *,
    action: str,
    outcome: str,
    device_kid: str = "",
    reason: str = "",
    detail: dict[str, Any] | None = None,
    source_ip: str | None = None,
) -> AuditEvent:
    """One TEEP exchange: message types in and out, token id, sizes, duration, why dropped.
    Also counted for Prometheus (apps/ops/metrics.py): every exchange passes here."""
    event = AuditEvent.objects.create(
        kind=AuditEvent.Kind.TEEP_EXCHANGE,
        action=action,
        outcome=outcome,
        device_kid=device_kid,
        reason=reason,
        detail=detail or {},
        source_ip=source_ip,
    )
    duration_ms = (detail or {}).get("duration_ms")
    metrics.count_exchange(
        message=action.removeprefix("teep."),
        outcome=outcome,
        reason=reason,
        seconds=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
    )
    return event


def record_system_event(
    *, action: str, outcome: str = "ok", reason: str = "", detail=None, obj=None
) -> AuditEvent:
    return AuditEvent.objects.create(
        kind=AuditEvent.Kind.SYSTEM,
        action=action,
        outcome=outcome,
        reason=reason,
        detail=detail or {},
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
    )
