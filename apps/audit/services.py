"""Writing the audit trail. Callers run these inside their own transaction, so an action and
its audit row commit (or roll back) together."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils import timezone

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
) -> int:
    """One TEEP exchange: message types in and out, token id, sizes, duration, why dropped.
    Also counted for Prometheus (apps/ops/metrics.py): every exchange passes here. Returns
    the row's id.

    Every TEEP request writes one, so it is a plain INSERT (no model instance round trip,
    issue 11); the row is the same as AuditEvent.objects.create() would write."""
    row = {
        "created_at": timezone.now(),
        "kind": AuditEvent.Kind.TEEP_EXCHANGE,
        "action": action,
        "outcome": outcome,
        "actor_id": None,
        "actor_name": "",
        "device_kid": device_kid,
        "object_type": "",
        "object_id": "",
        "object_repr": "",
        "reason": reason,
        "detail": detail or {},
        "source_ip": source_ip,
    }
    event_id = _insert(row)
    duration_ms = (detail or {}).get("duration_ms")
    metrics.count_exchange(
        message=action.removeprefix("teep."),
        outcome=outcome,
        reason=reason,
        seconds=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
    )
    return event_id


def _insert(row: dict) -> int:
    fields = [AuditEvent._meta.get_field(name) for name in row]
    values = [f.get_db_prep_save(row[f.attname], connection) for f in fields]
    sql = _INSERT_SQL.get(connection.vendor)
    if sql is None:
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        sql = _INSERT_SQL[connection.vendor] = (
            f"INSERT INTO {connection.ops.quote_name(AuditEvent._meta.db_table)} ({columns})"
            f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone()[0]


_INSERT_SQL: dict[str, str] = {}


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
