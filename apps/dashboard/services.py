"""The fleet at a glance, for the admin index: a few aggregate queries, whatever the fleet size.

`fleet_overview(now)` returns plain data (dicts, lists, numbers, strings: picklable, so it can
live in a shared cache); `cached_fleet_overview()` keeps it for OVERVIEW_CACHE_SECONDS so the
admin index stays fast at 100,000 devices. Every query is a GROUP BY, a conditional COUNT or a
short LIMITed list: their number does not grow with the fleet.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Case, Count, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from apps.attestation.conf import setting as attestation_setting
from apps.attestation.models import AttestationRecord
from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion, TrustedComponent
from apps.dashboard import rollout
from apps.devices.models import DeliveryItem, Device, InstalledComponent
from apps.policies import services as policies
from apps.policies.models import DeviceGroup, Policy, QueuedAction

OVERVIEW_CACHE_KEY = "dashboard:fleet-overview:v2"
OVERVIEW_CACHE_SECONDS = 30
# The admin index reloads itself this often (a meta refresh; its label says so).
PAGE_REFRESH_SECONDS = 60
TOP_COMPONENTS = 6
VERSIONS_PER_COMPONENT = 6
COMPROMISES_SHOWN = 5
ROLLOUTS_SHOWN = 4
RECENT_ROWS = 8
RECENT_WINDOW = timedelta(days=7)

# Last-contact histogram: (key, label, newer than this age); then "older" and "never".
CONTACT_BUCKETS = (
    ("hour", "< 1 h", timedelta(hours=1)),
    ("day", "< 24 h", timedelta(days=1)),
    ("week", "< 7 d", timedelta(days=7)),
)

# Attestation status of a device = its latest appraisal that is not a Verifier error (as
# apps.attestation.services.latest_record); an affirming one older than
# ATTESTATION_VALIDITY_SECONDS is "stale" (is_attestation_fresh is False for it).
ATTESTATION_STATUSES = ("affirming", "stale", "warning", "contraindicated", "none", "never")


def cached_fleet_overview() -> dict[str, Any]:
    overview = cache.get(OVERVIEW_CACHE_KEY)
    if overview is None:
        overview = fleet_overview(timezone.now())
        cache.set(OVERVIEW_CACHE_KEY, overview, OVERVIEW_CACHE_SECONDS)
    return overview


def fleet_overview(now: datetime) -> dict[str, Any]:
    devices = _devices(now)
    return {
        "generated_at": now,
        "devices": devices,
        "attestation": _attestation(now, devices["in_service"]),
        "components": _components(),
        "rollouts": _rollouts(),
        "compromises": _compromises(now),
        "failures": _failures(now),
        "totals": _totals(devices["in_service"]),
    }


def _devices(now: datetime) -> dict[str, Any]:
    """Devices by state, and when the ones in service (not retired) last contacted the TAM."""
    in_service = ~Q(state=Device.State.RETIRED)
    counts = {state: Count("id", filter=Q(state=state)) for state in Device.State.values}
    seen, newer_than = Q(last_contact_at__isnull=False), Q()
    for key, _, age in CONTACT_BUCKETS:
        bucket = in_service & seen & Q(last_contact_at__gte=now - age)
        counts[f"contact_{key}"] = Count(
            "id", filter=bucket & ~newer_than if newer_than else bucket
        )
        newer_than |= Q(last_contact_at__gte=now - age)
    counts["contact_older"] = Count("id", filter=in_service & seen & ~newer_than)
    counts["contact_never"] = Count("id", filter=in_service & Q(last_contact_at__isnull=True))
    row = Device.objects.aggregate(total=Count("id"), **counts)
    return {
        "total": row["total"],
        "retired": row[Device.State.RETIRED],
        "in_service": row["total"] - row[Device.State.RETIRED],
        "by_state": [
            {"state": state, "label": label, "count": row[state]}
            for state, label in Device.State.choices
        ],
        "last_contact": [
            {"key": key, "label": label, "count": row[f"contact_{key}"]}
            for key, label, _ in CONTACT_BUCKETS
        ]
        + [
            {"key": "older", "label": "older", "count": row["contact_older"]},
            {"key": "never", "label": "never", "count": row["contact_never"]},
        ],
    }


def _attestation(now: datetime, in_service: int) -> dict[str, Any]:
    """Devices in service by the status of their latest appraisal, counted from the records'
    side (the latest one per key: no newer non-error record for the same kid), so the work
    follows the appraisals kept rather than one lookup per device."""
    validity = timedelta(seconds=int(attestation_setting("ATTESTATION_VALIDITY_SECONDS")))
    S = AttestationRecord.Status
    appraisals = AttestationRecord.objects.exclude(status=S.ERROR)
    newer = appraisals.filter(agent_kid=OuterRef("agent_kid")).filter(
        Q(created_at__gt=OuterRef("created_at"))
        | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
    )
    stale = Q(status=S.AFFIRMING, created_at__lt=now - validity)
    rows = (
        appraisals.filter(
            agent_kid__in=Device.objects.exclude(state=Device.State.RETIRED).values("kid")
        )
        .exclude(Exists(newer))
        .annotate(shown=Case(When(stale, then=Value("stale")), default=F("status")))
        .values("shown")
        .annotate(devices=Count("id"))
        .order_by()
    )
    counts = {row["shown"]: row["devices"] for row in rows}
    counts["never"] = in_service - sum(counts.values())
    return {
        "validity_seconds": int(validity.total_seconds()),
        "counts": [
            {"status": status, "count": counts.get(status, 0)} for status in ATTESTATION_STATUSES
        ],
    }


def _components() -> list[dict[str, Any]]:
    """The most installed components, each with its devices in service per version (newest
    first)."""
    # Grouped on the installations (joined to their device only to leave retired ones out),
    # then named.
    rows = list(
        InstalledComponent.objects.exclude(device__state=Device.State.RETIRED)
        .values("component_id", "version_id")
        .annotate(devices=Count("id"))
        .order_by()
    )
    names = dict(
        TrustedComponent.objects.filter(pk__in={r["component_id"] for r in rows}).values_list(
            "pk", "name"
        )
    )
    versions = {
        v["pk"]: v
        for v in ComponentVersion.objects.filter(pk__in={r["version_id"] for r in rows}).values(
            "pk", "version_label", "sequence_number", "state"
        )
    }
    by_component: dict[Any, dict[str, Any]] = {}
    for row in rows:
        entry = by_component.setdefault(
            row["component_id"],
            {
                "id": row["component_id"],
                "name": names.get(row["component_id"], "not in the catalogue"),
                "devices": 0,
                "versions": [],
            },
        )
        entry["devices"] += row["devices"]
        version = versions.get(row["version_id"], {})
        entry["versions"].append(
            {
                "id": row["version_id"],
                "label": version.get("version_label", "unrecognised"),
                "sequence_number": version.get("sequence_number"),
                "state": version.get("state", ""),
                "devices": row["devices"],
            }
        )
    top = sorted(by_component.values(), key=lambda c: (-c["devices"], c["name"]))[:TOP_COMPONENTS]
    for entry in top:
        held = sorted(entry["versions"], key=lambda v: -(v["sequence_number"] or -1))
        if len(held) > VERSIONS_PER_COMPONENT:
            rest = held[VERSIONS_PER_COMPONENT - 1 :]
            held = held[: VERSIONS_PER_COMPONENT - 1] + [
                {
                    "id": None,
                    "label": f"{len(rest)} older",
                    "sequence_number": None,
                    "state": "",
                    "devices": sum(v["devices"] for v in rest),
                }
            ]
        entry["versions"] = held
    return top


def _rollouts() -> dict[str, Any]:
    """The most recently changed required policies and how far each got (one aggregate each)."""
    items = []
    for policy in rollout.policy_rollouts(ROLLOUTS_SHOWN + 1)[:ROLLOUTS_SHOWN]:
        found = rollout.policy_rollout(policy)
        items.append({"key": found.key, "id": policy.pk, "title": found.title,
                      "counts": rollout.rollout_counts(found)})
    more = Policy.objects.filter(effect="required").count() > len(items)
    return {"items": items, "more": more}


def _compromises(now: datetime) -> dict[str, Any]:
    """Compromise responses with removals open or marked in the last COMPROMISE_RECENT: they
    stay after the fan-out ends, until every holder settled and a month passed."""
    shown = rollout.recent_compromises(now, COMPROMISES_SHOWN + 1)
    items = []
    for response in shown[:COMPROMISES_SHOWN]:
        progress = policies.compromise_progress(response)  # one aggregate query each
        items.append(
            {
                "id": response.pk,
                "version_id": response.version_id,
                "version": str(response.version),
                "marked_at": response.marked_at,
                "marked_by": response.marked_by_name,
                "holders_at_mark": response.holders_at_mark,
                "segments": rollout.compromise_segments(progress),
                **{
                    k: progress[k]
                    for k in (
                        "total",
                        "not_contacted",
                        "pending",
                        "removed",
                        "failed",
                        "cancelled",
                        "fanout_finished",
                    )
                },
            }
        )
    return {"items": items, "more": len(shown) > COMPROMISES_SHOWN,
            "recent_days": rollout.COMPROMISE_RECENT.days}


def _failures(now: datetime) -> dict[str, Any]:
    since = now - RECENT_WINDOW
    failed = DeliveryItem.objects.filter(state=DeliveryItem.State.FAILED)
    deliveries = [
        {
            "device_id": d.device_id,
            "device": str(d.device),
            "kind": d.kind,
            "version": str(d.version) if d.version_id else "",
            "reason": d.reason,
            "at": d.settled_at or d.created_at,
        }
        for d in failed.select_related("device", "version__component").order_by(
            "-settled_at", "-id"
        )[:RECENT_ROWS]
    ]
    exchanges = AuditEvent.objects.filter(kind=AuditEvent.Kind.TEEP_EXCHANGE, created_at__gte=since)
    dropped = list(exchanges.filter(outcome="dropped").order_by("-created_at", "-id")[:RECENT_ROWS])
    errors = list(
        exchanges.filter(action="teep.error").order_by("-created_at", "-id")[:RECENT_ROWS]
    )
    day = exchanges.filter(created_at__gte=now - timedelta(days=1)).aggregate(
        exchanges=Count("id"),
        dropped=Count("id", filter=Q(outcome="dropped")),
        agent_errors=Count("id", filter=Q(action="teep.error")),
    )
    kids = {e.device_kid for e in dropped + errors if e.device_kid}
    names = (
        {
            kid: (pk, str(Device(kid=kid, name=name, registered_at=registered_at)))
            for pk, kid, name, registered_at in Device.objects.filter(kid__in=kids).values_list(
                "pk", "kid", "name", "registered_at"
            )
        }
        if kids
        else {}
    )

    def event(e: AuditEvent) -> dict[str, Any]:
        device_id, device = names.get(
            e.device_kid, (None, f"{e.device_kid[:16]}…" if e.device_kid else "unknown")
        )
        return {
            "id": e.pk,
            "at": e.created_at,
            "device_id": device_id,
            "device": device,
            "action": e.action,
            "reason": e.reason,
            "error": " ".join(
                filter(None, [e.detail.get("err_name", ""), e.detail.get("err_msg", "")])
            ),
        }

    return {
        "failed_deliveries": deliveries,
        "failed_deliveries_week": failed.filter(settled_at__gte=since).count(),
        "dropped": [event(e) for e in dropped],
        "agent_errors": [event(e) for e in errors],
        "last_day": day,
    }


def _totals(devices_in_service: int) -> dict[str, Any]:
    versions = ComponentVersion.objects.aggregate(
        versions=Count("id"),
        released=Count("id", filter=Q(state=ComponentVersion.State.RELEASED)),
        compromised=Count("id", filter=Q(state=ComponentVersion.State.COMPROMISED)),
    )
    return {
        "devices": devices_in_service,
        "components": TrustedComponent.objects.count(),
        **versions,
        "groups": DeviceGroup.objects.count(),
        "policies": Policy.objects.count(),
        "open_actions": QueuedAction.objects.filter(state__in=QueuedAction.OPEN_STATES).count(),
    }
