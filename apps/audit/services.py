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
    along_with: tuple[str, list] | None = None,
) -> int:
    """One TEEP exchange: message types in and out, token id, sizes, duration, why dropped.
    Also counted for Prometheus (apps/ops/metrics.py): every exchange passes here. Returns
    the row's id.

    `along_with`: a write (sql, params) of the same exchange that goes with its audit row
    (the device's contact columns): on PostgreSQL one statement runs both (a data-modifying
    WITH), elsewhere it runs just before.

    Every TEEP request writes one, so it is a plain INSERT (no model instance round trip,
    issue 11); the row is the same as AuditEvent.objects.create() would write."""
    event_id = _insert_exchange(
        created_at=timezone.now(), action=action, outcome=outcome, device_kid=device_kid,
        reason=reason, detail=detail or {}, source_ip=source_ip, along_with=along_with,
    )
    duration_ms = (detail or {}).get("duration_ms")
    metrics.count_exchange(
        message=action.removeprefix("teep."),
        outcome=outcome,
        reason=reason,
        seconds=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
    )
    return event_id


# The columns an exchange sets; every other column of the row is the same for every
# exchange and is written as a constant in the statement.
_EXCHANGE_COLUMNS = ("created_at", "action", "outcome", "device_kid", "reason", "detail", "source_ip")
_EXCHANGE_CONSTANTS = {
    "kind": AuditEvent.Kind.TEEP_EXCHANGE.value, "actor_id": None, "actor_name": "",
    "object_type": "", "object_id": "", "object_repr": "",
}
# Only these need converting for the database (time zone, JSON, inet); the rest are strings.
_CONVERTED = ("created_at", "detail", "source_ip")


def _insert_exchange(*, along_with=None, **row) -> int:
    values = dict(row)
    for name in _CONVERTED:
        values[name] = AuditEvent._meta.get_field(name).get_db_prep_save(row[name], connection)
    sql, params = _exchange_insert_sql(), [values[name] for name in _EXCHANGE_COLUMNS]
    with connection.cursor() as cursor:
        if along_with is not None and connection.vendor == "postgresql":
            sql, params = f"WITH along_with AS ({along_with[0]}) {sql}", [*along_with[1], *params]
        elif along_with is not None:
            cursor.execute(*along_with)
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _exchange_insert_sql() -> str:
    sql = _INSERT_SQL.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name
        columns = [*_EXCHANGE_COLUMNS, *_EXCHANGE_CONSTANTS]
        constants = ["NULL" if value is None else "'" + value.replace("'", "''") + "'"
                     for value in _EXCHANGE_CONSTANTS.values()]
        sql = _INSERT_SQL[connection.vendor] = (
            f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({', '.join(quote(c) for c in columns)})"
            f" VALUES ({', '.join(['%s'] * len(_EXCHANGE_COLUMNS) + constants)}) RETURNING id"
        )
    return sql


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
