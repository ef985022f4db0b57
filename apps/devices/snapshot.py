"""Everything a policy check needs to know about one device, read in one SQL statement.

The TAM's contact-time work (apps/tam/engine.py) starts by locking the device's row and
reading, with it: what the device holds, its unsettled deliveries, its open queued actions
and the compromise responses it was a holder of, its tags and overrides, its non-retryable
failures, whether personalization data waits for it, its latest appraisal, whether any group
requires attestation, and the policy epoch. Each list is aggregated into JSON by the database
(json_agg on PostgreSQL, json_group_array on SQLite), so the whole picture costs one round
trip; what the catalogue and the policies say is per process (apps/policies/world.py).

On PostgreSQL the row is read FOR UPDATE. A statement that had to wait for the lock sees the
locked row as it is after the other transaction, but its sub-selects as of when it started;
the snapshot compares the two versions of the row (xmin) and reads again when they differ.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import BinaryField, BooleanField, DateTimeField, JSONField

from apps.devices.models import DeliveryItem, Device, InstalledComponent, Tag  # noqa: F401

UNSETTLED = (DeliveryItem.State.SENT, DeliveryItem.State.EXPIRED)


@dataclass
class Held:
    """An InstalledComponent row."""

    pk: int | None
    component_key: str
    component_id: int | None
    version_id: int | None
    sequence_number: int | None
    image_digest: str


@dataclass
class Unsettled:
    """A DeliveryItem sent and not yet settled."""

    pk: int
    kind: str
    state: str
    component_key: str
    manifest_key: str
    version_id: int | None
    manifest_digest: str
    update_token: bytes
    expires_at: datetime | None
    created_at: datetime


@dataclass
class ActionRow:
    """A QueuedAction that is open, or that a compromise response queued (its floor)."""

    pk: int
    component_id: int
    version_id: int | None
    kind: str
    state: str
    compromise_id: int | None
    delivery_id: int | None


@dataclass
class OverrideRow:
    pk: int
    component_id: int
    effect: str
    version_id: int | None


@dataclass
class Snapshot:
    device: Device
    epoch: int | None  # None: the epoch row is missing (a flushed database): cache nothing
    installed: dict[str, Held] = field(default_factory=dict)
    unsettled: list[Unsettled] = field(default_factory=list)
    actions: list[ActionRow] = field(default_factory=list)
    tag_ids: set[int] = field(default_factory=set)
    overrides: list[OverrideRow] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)  # version id -> non-retryable failures
    personalization_pending: bool = False
    any_group_requires_attestation: bool = False
    appraisal_status: str | None = None
    appraisal_at: datetime | None = None
    # The device's columns as read (save_contact() writes only those that differ).
    device_as_read: dict = field(default_factory=dict)

    @property
    def open_actions(self) -> list[ActionRow]:
        from apps.policies.models import QueuedAction

        return [a for a in self.actions if a.state in QueuedAction.OPEN_STATES]


# --- Reading ------------------------------------------------------------------------------------

_DEVICE_FIELDS = [f for f in Device._meta.concrete_fields]


def _datetime(value):
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _converter(field_):
    """How a column's value as the cursor returns it becomes the model's value (None: as is)."""
    if isinstance(field_, DateTimeField):
        return _datetime
    if isinstance(field_, JSONField):
        return lambda value: json.loads(value) if isinstance(value, str) else value
    if isinstance(field_, BinaryField):
        return bytes
    if isinstance(field_, BooleanField):
        return bool
    return None


_CONVERTERS = [_converter(f) for f in _DEVICE_FIELDS]
_DEVICE_ATTNAMES = [f.attname for f in _DEVICE_FIELDS]
# Values of these types are never changed in place: the row "as read" can share them.
_IMMUTABLE = (str, int, float, bool, bytes, datetime, type(None))


def _convert_row(values) -> list:
    return [value if convert is None or value is None else convert(value)
            for convert, value in zip(_CONVERTERS, values, strict=True)]


def _tables():
    from apps.attestation.models import AttestationRecord
    from apps.personalization.models import DeviceEncryptionKey, PersonalizationData
    from apps.policies.models import DeviceGroup, DeviceOverride, PolicyEpoch, QueuedAction

    return {
        "device": Device._meta.db_table,
        "installed": InstalledComponent._meta.db_table,
        "delivery": DeliveryItem._meta.db_table,
        "action": QueuedAction._meta.db_table,
        "device_tags": Device.tags.through._meta.db_table,
        "override": DeviceOverride._meta.db_table,
        "record": AttestationRecord._meta.db_table,
        "pdata": PersonalizationData._meta.db_table,
        "pkey": DeviceEncryptionKey._meta.db_table,
        "group": DeviceGroup._meta.db_table,
        "epoch": PolicyEpoch._meta.db_table,
    }


def _json_rows(columns: list[str], source: str, postgres: bool) -> str:
    if postgres:
        return f"(SELECT COALESCE(json_agg(json_build_array({', '.join(columns)})), '[]'::json) FROM {source})"
    return f"(SELECT COALESCE(json_group_array(json_array({', '.join(columns)})), '[]') FROM {source})"


_sql_cache: dict[tuple[str, str], str] = {}


def _sql(by: str) -> str:
    vendor = connection.vendor
    key = (vendor, by)
    if key not in _sql_cache:
        _sql_cache[key] = _build_sql(by, postgres=vendor == "postgresql")
    return _sql_cache[key]


def _build_sql(by: str, *, postgres: bool) -> str:
    from apps.attestation.models import AttestationRecord
    from apps.personalization.models import PersonalizationData
    from apps.policies.models import QueuedAction

    t = _tables()
    hexed = "encode({}, 'hex')" if postgres else "lower(hex({}))"
    unsettled = ", ".join(f"'{s}'" for s in UNSETTLED)
    open_states = ", ".join(f"'{s}'" for s in QueuedAction.OPEN_STATES)
    columns = ", ".join(f"d.{f.column}" for f in _DEVICE_FIELDS)
    parts = [
        _json_rows(["i.id", "i.component_key", "i.component_id", "i.version_id", "i.sequence_number",
                    "i.image_digest"], f"{t['installed']} i WHERE i.device_id = d.id", postgres),
        _json_rows(["x.id", "x.kind", "x.state", "x.component_key", "x.manifest_key", "x.version_id",
                    "x.manifest_digest", hexed.format("x.update_token"), "x.expires_at", "x.created_at"],
                   f"{t['delivery']} x WHERE x.device_id = d.id AND x.state IN ({unsettled})", postgres),
        _json_rows(["a.id", "a.component_id", "a.version_id", "a.kind", "a.state", "a.compromise_id",
                    "a.delivery_id"],
                   f"{t['action']} a WHERE a.device_id = d.id AND (a.state IN ({open_states})"
                   " OR a.compromise_id IS NOT NULL)", postgres),
        _json_rows(["g.tag_id"], f"{t['device_tags']} g WHERE g.device_id = d.id", postgres),
        _json_rows(["o.id", "o.component_id", "o.effect", "o.version_id"],
                   f"{t['override']} o WHERE o.device_id = d.id", postgres),
        _json_rows(["f.version_id", "f.n"],
                   f"(SELECT version_id, COUNT(*) AS n FROM {t['delivery']} WHERE device_id = d.id"
                   f" AND state = '{DeliveryItem.State.FAILED}' AND NOT retryable AND version_id IS NOT NULL"
                   " GROUP BY version_id) f", postgres),
        f"(EXISTS (SELECT 1 FROM {t['pkey']} k WHERE k.device_id = d.id) AND EXISTS (SELECT 1 FROM {t['pdata']} p"
        f" WHERE p.device_id = d.id AND p.state = '{PersonalizationData.State.PENDING}'))",
        f"EXISTS (SELECT 1 FROM {t['group']} WHERE require_attestation)",
        _json_rows(["r.status", "r.created_at"],
                   f"(SELECT status, created_at FROM {t['record']} WHERE agent_kid = d.kid"
                   f" AND status <> '{AttestationRecord.Status.ERROR}' ORDER BY created_at DESC, id DESC LIMIT 1) r",
                   postgres),
        f"(SELECT value FROM {t['epoch']} WHERE id = 1)",
    ]
    if postgres:
        parts += ["d.xmin::text", f"(SELECT d2.xmin::text FROM {t['device']} d2 WHERE d2.id = d.id)"]
    where = "d.kid = %s" if by == "kid" else "d.id = %s"
    lock = " FOR UPDATE OF d" if postgres else ""
    return f"SELECT {columns}, {', '.join(parts)} FROM {t['device']} d WHERE {where}{lock}"


def _load(by: str, value, *, lock: bool) -> Snapshot | None:
    sql = _sql(by)
    if not lock:
        sql = sql.removesuffix(" FOR UPDATE OF d")
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute(sql, [value])
            row = cursor.fetchone()
            if row is None:
                return None
            if connection.vendor != "postgresql" or not lock or row[-1] == row[-2]:
                break
            # Waited for another transaction's lock: read again, now that it committed.
    return _snapshot_from_row(row)


def _json(value):
    return json.loads(value) if isinstance(value, str) else (value or [])


def _snapshot_from_row(row) -> Snapshot:
    n = len(_DEVICE_FIELDS)
    values = _convert_row(row[:n])
    device = Device.from_db(connection.alias, _DEVICE_ATTNAMES, values)
    installed, deliveries, actions, tags, overrides, failures, pending, requires, appraisal, epoch = row[n:n + 10]
    appraisal = _json(appraisal)
    snap = Snapshot(
        device=device,
        epoch=int(epoch) if epoch is not None else None,
        installed={r[1]: Held(r[0], r[1], r[2], r[3], r[4], r[5] or "") for r in _json(installed)},
        unsettled=[
            Unsettled(r[0], r[1], r[2], r[3], r[4] or "", r[5], r[6] or "", bytes.fromhex(r[7]) if r[7] else b"",
                      _datetime(r[8]), _datetime(r[9]))
            for r in _json(deliveries)
        ],
        actions=[ActionRow(*r) for r in _json(actions)],
        tag_ids={r[0] for r in _json(tags)},
        overrides=[OverrideRow(*r) for r in _json(overrides)],
        failures={r[0]: r[1] for r in _json(failures)},
        personalization_pending=bool(pending),
        any_group_requires_attestation=bool(requires),
        appraisal_status=appraisal[0][0] if appraisal else None,
        appraisal_at=_datetime(appraisal[0][1]) if appraisal else None,
        device_as_read={name: value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)
                        for name, value in zip(_DEVICE_ATTNAMES, values, strict=True)},
    )
    return snap


def lock_by_kid(kid: str) -> Snapshot | None:
    """Inside a transaction: the device with this kid, its row locked (None: unknown kid)."""
    return _load("kid", kid, lock=True)


def lock_by_id(device_id: int) -> Snapshot | None:
    return _load("id", device_id, lock=True)


def read(device_id: int) -> Snapshot | None:
    """Without a lock (the admin's "what is due and why")."""
    return _load("id", device_id, lock=False)
