"""The policy epoch (PolicyEpoch): a number the database itself bumps whenever something
changes that can change what is due for devices in general, so that a policy check can tell
"nothing changed since this device was last found with nothing due" with one number
(apps/tam/engine.py's fast path), and a worker can keep what every check needs
(apps/policies/world.py) until it changes.

Triggers bump it (migration policies/0005), in the transaction of the change, whoever makes it
(the admin, the API, a management command, a bulk UPDATE, raw SQL): inserting, updating or
deleting a device group, an attribute rule, a policy, a device override, a Trusted Component
or a component version; creating, deleting or re-pointing a compromise response (not its
fan-out progress); changing a group's or a device's tags; updating a device's attributes.

Per-device work a check itself does (installed components, deliveries, queued actions,
personalization data) does not bump it: the fast path checks those per device, in the same
statement that reads the device (apps/devices/snapshot.py).
"""

from __future__ import annotations

from django.db import connection

EPOCH_ROW = 1

# (table, the statements that change what is due). "attributes": only that column's updates.
WATCHED = (
    ("policies_devicegroup", "INSERT OR UPDATE OR DELETE"),
    ("policies_attributerule", "INSERT OR UPDATE OR DELETE"),
    ("policies_policy", "INSERT OR UPDATE OR DELETE"),
    ("policies_deviceoverride", "INSERT OR UPDATE OR DELETE"),
    ("policies_devicegroup_tags", "INSERT OR UPDATE OR DELETE"),
    ("policies_compromiseresponse", "INSERT OR DELETE OR UPDATE OF version_id, replacement_id"),
    ("components_trustedcomponent", "INSERT OR UPDATE OR DELETE"),
    ("components_componentversion", "INSERT OR UPDATE OR DELETE"),
    ("devices_device_tags", "INSERT OR UPDATE OR DELETE"),
    ("devices_device", "UPDATE OF attributes"),
)

# A row created afresh (a new database, a restore, a test's flush) starts at the current time
# in microseconds, so its numbers never repeat ones a running worker may have cached.
_NOW_MICROS = {
    "postgresql": "(extract(epoch from clock_timestamp()) * 1000000)::bigint",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
}


def _upsert(vendor: str) -> str:
    return (f"INSERT INTO policies_policyepoch (id, value) VALUES (1, {_NOW_MICROS[vendor]}) "
            "ON CONFLICT (id) DO UPDATE SET value = policies_policyepoch.value + 1")


def trigger_sql(vendor: str) -> tuple[list[str], list[str]]:
    """(create, drop) statements for the triggers on `vendor` (postgresql or sqlite)."""
    create, drop = [], []
    if vendor == "postgresql":
        create.append(
            "CREATE OR REPLACE FUNCTION tam_bump_policy_epoch() RETURNS trigger AS $$ "
            f"BEGIN {_upsert(vendor)}; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        for table, events in WATCHED:
            create.append(f"CREATE TRIGGER {table}_bumps_epoch AFTER {events} ON {table} "
                          "FOR EACH STATEMENT EXECUTE FUNCTION tam_bump_policy_epoch()")
            drop.append(f"DROP TRIGGER IF EXISTS {table}_bumps_epoch ON {table}")
        drop.append("DROP FUNCTION IF EXISTS tam_bump_policy_epoch()")
    elif vendor == "sqlite":
        for table, events in WATCHED:
            for event in events.replace("OR UPDATE OF", "|UPDATE OF").replace(" OR ", "|").split("|"):
                event = event.strip()
                name = f"{table}_bumps_epoch_{event.split()[0].lower()}"
                create.append(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {_upsert(vendor)}; END")
                drop.append(f"DROP TRIGGER IF EXISTS {name}")
    return create, drop


def bump() -> None:
    """For a change the triggers cannot see (none today); inside the change's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_upsert(connection.vendor))


def current() -> int | None:
    """None while the row does not exist (nothing may be cached then)."""
    from apps.policies.models import PolicyEpoch

    return PolicyEpoch.objects.filter(pk=EPOCH_ROW).values_list("value", flat=True).first()
