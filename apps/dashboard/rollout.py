"""Rollout progress: how far a version has reached the devices that should hold it, and how
far a compromise response has got. Read-only, like the rest of the dashboard.

A rollout is either a **policy's** (the members of its group; the target is the pinned
version, or the newest released one) or a **version's** (the members of every group whose
required policy targets it today, plus every device that holds it or was sent it). Retired
devices are never counted. Each device counted is in exactly one state:

- ``installed``: it holds the component at the target's sequence number or newer (SUIT never
  rolls back, so a newer one counts as done);
- ``pending``: an Update carrying the target was delivered and not confirmed (no Success or
  Error yet; no answer before its token expired; or a later report showed it lost on the
  way): it is settled, or offered again, at the next contact;
- ``failed``: the last Update carrying the target failed (the agent's Error, with its reason
  on the delivery);
- ``not_contacted``: nothing delivered yet, and no contact since the target became due (its
  release, or the policy's last change);
- ``not_offered``: contacted since, but not offered the target (an override, a forbidding
  policy, a back-off, a removal first, the retry limit), or offered before and no longer held.

Counting costs one aggregate query over the population (two correlated lookups per device,
on indexed columns), whatever the fleet size; never a query per device. The same conditions
filter the device list (DeviceAdmin's rollout filter), so a count and its list always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from apps.components.models import ComponentVersion
from apps.devices.models import DeliveryItem, Device, InstalledComponent
from apps.policies import resolution
from apps.policies.models import CompromiseResponse, Effect, Policy, QueuedAction

ROLLOUT_STATES = ("installed", "pending", "failed", "not_contacted", "not_offered")
ROLLOUT_LABELS = {
    "installed": "installed",
    "pending": "pending (delivered, not confirmed)",
    "failed": "failed",
    "not_contacted": "not contacted yet",
    "not_offered": "contacted, not offered",
}
ROLLOUT_TONES = {
    "installed": "ok",
    "pending": "info",
    "failed": "bad",
    "not_contacted": "muted",
    "not_offered": "warn",
}

# A compromise response's queued removals by progress, from compromise_progress()'s counts.
COMPROMISE_BUCKETS = ("removed", "delivered", "due", "not_contacted", "failed", "cancelled")
COMPROMISE_LABELS = {
    "removed": "removed",
    "delivered": "delivered, not confirmed",
    "due": "due at the next contact",
    "not_contacted": "not contacted yet",
    "failed": "failed",
    "cancelled": "cancelled",
}
COMPROMISE_TONES = {
    "removed": "ok",
    "delivered": "info",
    "due": "warn",
    "not_contacted": "muted",
    "failed": "bad",
    "cancelled": "muted",
}
# The dashboard keeps a compromise response while removals are open, and this long after.
COMPROMISE_RECENT = timedelta(days=30)


# --- One rollout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    kind: str  # "policy" or "version"
    pk: int
    title: str
    target: ComponentVersion | None  # None: nothing released to roll out
    since: datetime | None
    population: QuerySet | None  # devices counted (not yet annotated)

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.pk}"


def policy_rollout(policy: Policy) -> Rollout:
    """The rollout of a required policy: its group's devices toward its target version."""
    target = policy.version if policy.version_id else newest_released(policy.component_id)
    title = f"{policy.group.name}: {policy.component.name} " + (
        target.version_label if target else "(nothing released)"
    )
    if policy.effect != Effect.REQUIRED or target is None:
        return Rollout("policy", policy.pk, title, None, None, None)
    since = max(filter(None, [policy.updated_at, target.released_at]))
    return Rollout("policy", policy.pk, title, target, since, resolution.members(policy.group))


def version_rollout(version: ComponentVersion) -> Rollout:
    """A version toward the devices whose group policy targets it, and everyone it reached."""
    title = f"{version.component.name} {version.version_label}"
    targeting = Q()
    if version.state == ComponentVersion.State.RELEASED:
        newest = newest_released(version.component_id)
        policies = Policy.objects.filter(
            component_id=version.component_id, effect=Effect.REQUIRED
        ).select_related("group")
        for policy in policies:
            if policy.version_id == version.pk or (
                not policy.version_id and newest is not None and newest.pk == version.pk
            ):
                targeting |= Q(pk__in=resolution.members(policy.group).values("pk"))
    reached = Q(pk__in=InstalledComponent.objects.filter(version=version).values("device_id")) | Q(
        pk__in=DeliveryItem.objects.filter(version=version, kind=DeliveryItem.Kind.INSTALL).values(
            "device_id"
        )
    )
    population = Device.objects.filter(targeting | reached if targeting else reached)
    since = version.released_at or version.created_at
    return Rollout("version", version.pk, title, version, since, population)


def newest_released(component_id: int) -> ComponentVersion | None:
    return (
        ComponentVersion.objects.filter(
            component_id=component_id, state=ComponentVersion.State.RELEASED
        )
        .defer("envelope")
        .order_by("-sequence_number")
        .first()
    )


def _classified(rollout: Rollout) -> QuerySet:
    target = rollout.target
    holds = InstalledComponent.objects.filter(
        device=OuterRef("pk"),
        component_id=target.component_id,
        sequence_number__gte=target.sequence_number,
    )
    last_delivery = (
        DeliveryItem.objects.filter(
            device=OuterRef("pk"), version_id=target.pk, kind=DeliveryItem.Kind.INSTALL
        )
        .order_by("-created_at", "-id")
        .values("state")[:1]
    )
    return (
        rollout.population.exclude(state=Device.State.RETIRED)
        .order_by()
        .annotate(_holds=Exists(holds), _last=Subquery(last_delivery))
    )


def _state_conditions(since: datetime) -> dict[str, Q]:
    S = DeliveryItem.State
    missing = Q(_holds=False)
    quiet = Q(last_contact_at__isnull=True) | Q(last_contact_at__lt=since)
    return {
        "installed": Q(_holds=True),
        "pending": missing & Q(_last__in=[S.SENT, S.EXPIRED, S.LOST]),
        "failed": missing & Q(_last=S.FAILED),
        "not_contacted": missing & Q(_last__isnull=True) & quiet,
        "not_offered": missing
        & ((Q(_last__isnull=True) & Q(last_contact_at__gte=since)) | Q(_last=S.SUCCEEDED)),
    }


def rollout_counts(rollout: Rollout) -> dict[str, int]:
    """{"total", and one count per ROLLOUT_STATES}: one aggregate query."""
    if rollout.target is None:
        return {"total": 0, **{state: 0 for state in ROLLOUT_STATES}}
    conditions = _state_conditions(rollout.since)
    return _classified(rollout).aggregate(
        total=Count("pk"),
        **{state: Count("pk", filter=condition) for state, condition in conditions.items()},
    )


def rollout_devices(rollout: Rollout, state: str) -> QuerySet:
    """The devices of the rollout in `state`, as ids (for the device list's filter)."""
    if rollout.target is None or state not in ROLLOUT_STATES:
        return Device.objects.none().values("pk")
    return _classified(rollout).filter(_state_conditions(rollout.since)[state]).values("pk")


def rollout_from_key(key: str) -> Rollout | None:
    """ "policy-12" or "version-7" (the device list's filter value), None when unknown."""
    kind, _, pk = (key or "").partition("-")
    if not pk.isdigit() or len(pk) > 18:
        return None
    if kind == "policy":
        policy = (
            Policy.objects.select_related("group", "component", "version").filter(pk=pk).first()
        )
        return policy_rollout(policy) if policy else None
    if kind == "version":
        version = ComponentVersion.objects.select_related("component").filter(pk=pk).first()
        return version_rollout(version) if version else None
    return None


def rollout_progress(rollout: Rollout, device_list_url: str) -> dict[str, Any]:
    """What console/progress.html draws: counts, segments and the device list per state."""
    counts = rollout_counts(rollout)
    return progress_view(
        title=rollout.title,
        total=counts["total"],
        done=counts["installed"],
        done_label="installed",
        segments=[
            (
                state,
                ROLLOUT_LABELS[state],
                counts[state],
                ROLLOUT_TONES[state],
                f"{device_list_url}?rollout={rollout.key}-{state}",
            )
            for state in ROLLOUT_STATES
        ],
        unit="devices",
    )


def policy_rollouts(limit: int, offset: int = 0) -> list[Policy]:
    """Required policies, the most recently changed first (the dashboard and the rollouts page)."""
    return list(
        Policy.objects.filter(effect=Effect.REQUIRED)
        .select_related("group", "component", "version")
        .order_by("-updated_at", "-id")[offset : offset + limit]
    )


# --- Compromise responses ---------------------------------------------------------------------


def compromise_segments(progress: dict[str, Any]) -> dict[str, int]:
    """The removals of a response in disjoint buckets, from compromise_progress()'s counts."""
    return {
        "removed": progress["removed"],
        "delivered": progress["delivered"],
        "due": progress["queued"] - progress["not_contacted"],
        "not_contacted": progress["not_contacted"],
        "failed": progress["failed"],
        "cancelled": progress["cancelled"],
    }


def compromise_bucket_condition(bucket: str) -> Q | None:
    """The queued removals of one bucket (same definitions as compromise_progress)."""
    State = QueuedAction.State
    quiet = Q(device__last_contact_at__isnull=True) | Q(device__last_contact_at__lt=F("created_at"))
    condition = {
        "removed": Q(state=State.SUCCEEDED),
        "delivered": Q(state=State.DELIVERED),
        "due": Q(state=State.QUEUED) & Q(device__last_contact_at__gte=F("created_at")),
        "not_contacted": Q(state=State.QUEUED) & quiet,
        "failed": Q(state=State.FAILED),
        "cancelled": Q(state=State.CANCELLED),
    }.get(bucket)
    # The removals only: a replacement install the response also queued is not counted.
    return condition & Q(kind=QueuedAction.Kind.REMOVE) if condition is not None else None


def compromise_progress_view(response: CompromiseResponse, progress: dict, actions_url: str):
    segments = compromise_segments(progress)
    return progress_view(
        title=str(response.version),
        total=progress["total"],
        done=segments["removed"],
        done_label="removed",
        segments=[
            (
                bucket,
                COMPROMISE_LABELS[bucket],
                segments[bucket],
                COMPROMISE_TONES[bucket],
                f"{actions_url}?compromise__id__exact={response.pk}&progress={bucket}",
            )
            for bucket in COMPROMISE_BUCKETS
        ],
        unit="devices",
    )


def recent_compromises(now: datetime, limit: int) -> list[CompromiseResponse]:
    """Responses with removals still open, or marked within COMPROMISE_RECENT: kept after the
    fan-out ends, until every holder settled and a month passed."""
    open_removals = QueuedAction.objects.filter(
        compromise=OuterRef("pk"), state__in=QueuedAction.OPEN_STATES
    )
    return list(
        CompromiseResponse.objects.filter(
            Q(fanout_finished_at__isnull=True)
            | Q(marked_at__gte=now - COMPROMISE_RECENT)
            | Exists(open_removals)
        )
        .select_related("version__component")
        .order_by("-marked_at", "-id")[:limit]
    )


# --- Drawing ------------------------------------------------------------------------------------


def progress_view(*, title, total, done, done_label, segments, unit) -> dict[str, Any]:
    """Segments as (key, label, count, tone, href); x and width in percent of the total."""
    x, drawn = 0.0, []
    for key, label, count, tone, href in segments:
        width = round(100 * count / total, 3) if total else 0
        drawn.append(
            {
                "key": key,
                "label": label,
                "count": count,
                "tone": tone,
                "href": href,
                "x": round(x, 3),
                "width": width,
            }
        )
        x += width
    percent = round(100 * done / total) if total else 0
    return {
        "title": title,
        "total": total,
        "done": done,
        "done_label": done_label,
        "percent": percent,
        "segments": drawn,
        "unit": unit,
        "generated_at": timezone.now(),
    }
