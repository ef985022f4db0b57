"""Policies, queued actions and compromise responses: every state change goes through here.

Contact-time functions (resolve_at_contact, link_deliveries, settle_*) are called by
apps.devices.services inside the TAM's transaction that holds the device's row lock. Operator
actions run in their own durable transaction and write their audit row in it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from apps.audit.services import record_operator_action, record_system_event
from apps.components.models import ComponentVersion, TrustedComponent
from apps.components.services import lock_version
from apps.devices.models import DeliveryItem, Device, InstalledComponent
from apps.policies import resolution
from apps.policies.models import CompromiseResponse, DeviceGroup, Effect, Policy, QueuedAction

OPEN = QueuedAction.OPEN_STATES
FANOUT_BATCH_SIZE = 1000
# A fan-out with no batch for this long is resumed by the sweeper (lost publish, dead worker).
FANOUT_STALL_AFTER = timedelta(minutes=5)


class PolicyError(Exception):
    """An operator request that cannot be done; the message says why."""


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


# --- At a device's contact (row lock held by the caller) ---------------------------------------


def resolve_at_contact(device: Device, *, now) -> resolution.Resolution:
    """The device's desired state; queued actions that its reported state already settles
    are settled, and held compromised versions get a tracked removal."""
    result = resolution.resolve(device, now=now)
    for action_id, state, reason in result.settle:
        QueuedAction.objects.filter(pk=action_id, state__in=OPEN).update(
            state=state, reason=reason[:300], settled_at=now
        )
    if result.untracked_compromised:
        _track_compromised_removals(device, result, now)
    return result


def _track_compromised_removals(device, result, now) -> None:
    """A device found holding a compromised version the fan-out did not know about (or
    before the fan-out reached it): its removal is tracked like the others."""
    responses = {
        r.version_id: r
        for r in CompromiseResponse.objects.filter(version__in=result.untracked_compromised)
    }
    QueuedAction.objects.bulk_create(
        [
            QueuedAction(
                device=device, component_id=v.component_id, version=v, kind=QueuedAction.Kind.REMOVE,
                compromise=responses.get(v.pk), reason="version marked compromised",
            )
            for v in result.untracked_compromised
        ],
        ignore_conflicts=True,
    )
    open_removals = dict(
        QueuedAction.objects.filter(
            device=device, kind=QueuedAction.Kind.REMOVE, state__in=OPEN,
            component_id__in=[v.component_id for v in result.untracked_compromised],
        ).values_list("component_id", "pk")
    )
    for decision in result.decisions:
        if decision.action == "remove" and decision.component and not decision.action_ids:
            if decision.component.pk in open_removals:
                decision.action_ids = [open_removals[decision.component.pk]]


def link_deliveries(items: list[DeliveryItem], actions_by_key: dict[str, list[int]], *, now) -> None:
    """Queued actions carried by an Update point at the DeliveryItem that carried them."""
    for item in items:
        action_ids = actions_by_key.get(item.component_key)
        if action_ids:
            QueuedAction.objects.filter(pk__in=action_ids, state__in=OPEN).update(
                state=QueuedAction.State.DELIVERED, delivery=item, delivered_at=now
            )


def settle_succeeded(items: list[DeliveryItem], *, now) -> int:
    return QueuedAction.objects.filter(
        delivery__in=[i.pk for i in items], state=QueuedAction.State.DELIVERED
    ).update(state=QueuedAction.State.SUCCEEDED, settled_at=now, reason="")


def settle_failed(items: list[DeliveryItem], *, now) -> None:
    """A failed delivery goes back to the queue until it failed TEEP_MAX_DELIVERY_FAILURES
    times; failures the agent called temporary do not count."""
    limit = settings.TEEP_MAX_DELIVERY_FAILURES
    for item in items:
        actions = QueuedAction.objects.filter(delivery=item, state=QueuedAction.State.DELIVERED)
        if item.retryable:
            actions.update(state=QueuedAction.State.QUEUED, reason=item.reason[:300])
            continue
        actions.filter(attempts__gte=limit - 1).update(
            state=QueuedAction.State.FAILED, attempts=F("attempts") + 1, reason=item.reason[:300], settled_at=now
        )
        actions.update(state=QueuedAction.State.QUEUED, attempts=F("attempts") + 1, reason=item.reason[:300])


# --- Queuing and cancelling ----------------------------------------------------------------------


@transaction.atomic(durable=True)
def queue_action(
    *,
    actor,
    component: TrustedComponent,
    kind: str,
    version: ComponentVersion | None = None,
    device: Device | None = None,
    group: DeviceGroup | None = None,
    reason: str = "",
    request=None,
) -> int:
    """Queue install, update or removal for one device or every device of a group; returns
    how many actions were queued (a device that already has the same action open keeps it)."""
    if (device is None) == (group is None):
        raise PolicyError("queue an action for one device or for one group")
    if kind not in QueuedAction.Kind.values:
        raise PolicyError(f"unknown action {kind!r}")
    if version is not None and version.component_id != component.pk:
        raise PolicyError(f"{version} is not a version of {component}")
    if kind != QueuedAction.Kind.REMOVE and version is not None and version.state != ComponentVersion.State.RELEASED:
        raise PolicyError(f"{version} is {version.get_state_display().lower()}; only released versions are installed")
    device_ids = [device.pk] if device is not None else list(
        resolution.members(group).values_list("pk", flat=True)
    )
    before = QueuedAction.objects.filter(component=component, kind=kind, state__in=OPEN).count()
    for start in range(0, len(device_ids), FANOUT_BATCH_SIZE):
        QueuedAction.objects.bulk_create(
            [
                QueuedAction(device_id=pk, component=component, version=version, kind=kind,
                             reason=reason[:300], created_by=_user(actor))
                for pk in device_ids[start:start + FANOUT_BATCH_SIZE]
            ],
            ignore_conflicts=True,
        )
    queued = QueuedAction.objects.filter(component=component, kind=kind, state__in=OPEN).count() - before
    record_operator_action(
        actor=actor,
        action=f"queued_action.{kind}",
        obj=device or group,
        device_kid=device.kid if device else "",
        reason=reason,
        request=request,
        detail={"component": component.name, "version": version.version_label if version else None,
                "devices": len(device_ids), "queued": queued},
    )
    return queued


@transaction.atomic(durable=True)
def cancel_actions(action_ids, *, actor, request=None) -> int:
    """Cancel queued actions; one already delivered can no longer be cancelled."""
    ids = list(
        QueuedAction.objects.filter(pk__in=list(action_ids), state=QueuedAction.State.QUEUED)
        .select_for_update().values_list("pk", flat=True)
    )
    cancelled = QueuedAction.objects.filter(pk__in=ids, state=QueuedAction.State.QUEUED).update(
        state=QueuedAction.State.CANCELLED, settled_at=timezone.now(),
        reason=f"cancelled by {getattr(actor, 'get_username', lambda: 'system')()}",
    )
    record_operator_action(
        actor=actor, action="queued_action.cancel", request=request,
        detail={"actions": ids, "cancelled": cancelled},
    )
    return cancelled


# --- Policy objects edited in the admin ------------------------------------------------------------


def record_policy_change(obj, *, actor, change: str, request=None, before=None) -> None:
    """Audit for groups, rules, policies and overrides (saved by the admin's transaction)."""
    record_operator_action(
        actor=actor, action=f"{obj._meta.model_name}.{change}", obj=obj, request=request,
        device_kid=getattr(getattr(obj, "device", None), "kid", ""),
        before=before, after=None if change == "delete" else {"repr": str(obj)},
    )


# --- Compromise response -----------------------------------------------------------------------------


def compromise_preview(version: ComponentVersion) -> dict:
    """What marking `version` compromised will do: for the confirmation page."""
    holders = InstalledComponent.objects.filter(version=version).values("device_id").distinct().count()
    newest_other = (
        version.component.versions.filter(state=ComponentVersion.State.RELEASED)
        .exclude(pk=version.pk).order_by("-sequence_number").first()
    )
    fixes = []
    for policy in Policy.objects.filter(component=version.component, effect=Effect.REQUIRED).select_related(
        "group", "version"
    ):
        if policy.version_id == version.pk:
            fixes.append((policy, None, "pins the compromised version: nothing will be installed "
                                        "until the policy names another version"))
        elif policy.version_id:
            fixes.append((policy, policy.version, f"installs the pinned version {policy.version.version_label}"))
        elif newest_other is not None:
            fixes.append((policy, newest_other, f"installs the latest released version {newest_other.version_label}"))
        else:
            fixes.append((policy, None, "no other released version: nothing will be installed"))
    return {"version": version, "holders": holders, "fixes": fixes,
            "already": version.state == ComponentVersion.State.COMPROMISED}


@transaction.atomic(durable=True)
def mark_compromised(version: ComponentVersion, *, actor, reason: str, request=None) -> CompromiseResponse:
    """Forbid `version` everywhere at once and start the removal fan-out (after commit).

    The caller checks the permission (components.mark_compromised)."""
    reason = (reason or "").strip()
    if not reason:
        raise PolicyError("a reason is required to mark a version compromised")
    version = lock_version(version.pk)
    if version.state == ComponentVersion.State.COMPROMISED:
        raise PolicyError(f"{version} is already marked compromised")
    before = {"state": version.state}
    version.state = ComponentVersion.State.COMPROMISED
    version.state_changed_reason = reason
    version.updated_by = _user(actor)
    version.save(update_fields=["state", "state_changed_reason", "updated_by", "updated_at"])
    holders = InstalledComponent.objects.filter(version=version).values("device_id").distinct().count()
    response = CompromiseResponse.objects.create(
        version=version,
        reason=reason,
        marked_by=_user(actor),
        marked_by_name=getattr(actor, "get_username", lambda: str(actor or ""))(),
        holders_at_mark=holders,
    )
    record_operator_action(
        actor=actor,
        action="component_version.compromise",
        obj=version,
        reason=reason,
        request=request,
        before=before,
        after={"state": version.state},
        detail={"holders": holders, "compromise_response": response.pk},
    )
    from apps.policies.tasks import fan_out_compromise

    transaction.on_commit(lambda: fan_out_compromise.delay(response.pk), robust=True)
    return response


def fan_out_compromise_batch(response_id: int, *, batch_size: int = FANOUT_BATCH_SIZE) -> bool:
    """Queue the removal for the next `batch_size` holders (by InstalledComponent id after
    the stored cursor); True when every holder has been seen.

    Idempotent and safe to run twice at once: one action per (device, compromise) and one
    open removal per (device, component) are unique constraints, and rows are inserted
    with ON CONFLICT DO NOTHING in id order (no deadlock between two runs)."""
    now = timezone.now()
    with transaction.atomic():
        response = CompromiseResponse.objects.select_related("version").get(pk=response_id)
        if response.fanout_finished_at is not None:
            return True
        version = response.version
        rows = list(
            InstalledComponent.objects.filter(version_id=version.pk, id__gt=response.fanout_cursor)
            .order_by("id").values_list("id", "device_id")[:batch_size]
        )
        if rows:
            device_ids = [device_id for _, device_id in rows]
            QueuedAction.objects.bulk_create(
                [
                    QueuedAction(device_id=device_id, component_id=version.component_id, version_id=version.pk,
                                 kind=QueuedAction.Kind.REMOVE, compromise_id=response.pk,
                                 reason="version marked compromised")
                    for device_id in device_ids
                ],
                ignore_conflicts=True,
            )
            # An operator's removal already open for the same component now serves this response.
            QueuedAction.objects.filter(
                device_id__in=device_ids, component_id=version.component_id, kind=QueuedAction.Kind.REMOVE,
                state__in=OPEN, compromise__isnull=True,
            ).exclude(
                device_id__in=QueuedAction.objects.filter(compromise_id=response.pk).values("device_id")
            ).update(compromise_id=response.pk)
            CompromiseResponse.objects.filter(pk=response.pk, fanout_cursor__lt=rows[-1][0]).update(
                fanout_cursor=rows[-1][0]
            )
        CompromiseResponse.objects.filter(pk=response.pk).update(fanout_heartbeat_at=now)
        if len(rows) < batch_size:
            finished = CompromiseResponse.objects.filter(pk=response.pk, fanout_finished_at__isnull=True).update(
                fanout_finished_at=now
            )
            if finished:
                record_system_event(
                    action="compromise.fanout-finished", obj=response,
                    detail={"actions": response.actions.count()},
                )
            return True
        return False


def compromise_progress(response: CompromiseResponse) -> dict:
    """Counts derived from the response's queued actions (never stored)."""
    State = QueuedAction.State
    not_contacted = Q(state=State.QUEUED) & (
        Q(device__last_contact_at__isnull=True) | Q(device__last_contact_at__lt=F("created_at"))
    )
    counts = QueuedAction.objects.filter(compromise=response).aggregate(
        total=Count("id"),
        queued=Count("id", filter=Q(state=State.QUEUED)),
        delivered=Count("id", filter=Q(state=State.DELIVERED)),
        removed=Count("id", filter=Q(state=State.SUCCEEDED)),
        failed=Count("id", filter=Q(state=State.FAILED)),
        cancelled=Count("id", filter=Q(state=State.CANCELLED)),
        not_contacted=Count("id", filter=not_contacted),
    )
    counts["pending"] = counts["delivered"] + counts["queued"] - counts["not_contacted"]
    counts["fanout_finished"] = response.fanout_finished_at is not None
    return counts


# --- Housekeeping (Celery beat) --------------------------------------------------------------------


def requeue_unanswered_actions(*, now=None) -> int:
    """Delivered actions whose Update was never answered (token expired) go back to queued."""
    now = now or timezone.now()
    return QueuedAction.objects.filter(state=QueuedAction.State.DELIVERED).filter(
        Q(delivery__isnull=True)
        | Q(delivery__state=DeliveryItem.State.EXPIRED)
        | Q(delivery__token__isnull=True, delivery__state=DeliveryItem.State.SENT)
        | Q(delivery__token__expires_at__lte=now, delivery__state=DeliveryItem.State.SENT)
    ).update(state=QueuedAction.State.QUEUED, reason="no answer before the Update's token expired")


def stalled_fanouts(*, now=None) -> list[int]:
    now = now or timezone.now()
    cutoff = now - FANOUT_STALL_AFTER
    return list(
        CompromiseResponse.objects.filter(fanout_finished_at__isnull=True)
        .filter(Q(fanout_heartbeat_at__lt=cutoff) | Q(fanout_heartbeat_at__isnull=True, marked_at__lt=cutoff))
        .values_list("pk", flat=True)
    )


# --- Retired devices (apps.devices.services.retire_device / unretire_device) ---------------------


def cancel_actions_of_retired_device(device: Device, *, reason: str) -> list[int]:
    """A retired device's messages are dropped: its open actions could never settle, so they
    are cancelled (compromise responses then count them as settled); returns their ids.
    The caller holds the device's lock."""
    ids = list(
        QueuedAction.objects.filter(device=device, state__in=OPEN).order_by("id").values_list("pk", flat=True)
    )
    QueuedAction.objects.filter(pk__in=ids, state__in=OPEN).update(
        state=QueuedAction.State.CANCELLED, settled_at=timezone.now(),
        reason=f"device retired: {reason}"[:300],
    )
    return ids


def reopen_actions_of_unretired_device(device: Device, action_ids) -> list[int]:
    """The actions its retirement cancelled (`action_ids`, from the retirement's audit row) are
    queued again, unless the same action was queued anew meanwhile (one open action per
    device and component); returns the ids queued again."""
    reopened = []
    cancelled = QueuedAction.objects.filter(
        device=device, pk__in=list(action_ids), state=QueuedAction.State.CANCELLED
    ).order_by("id")
    for action in cancelled:
        if QueuedAction.objects.filter(
            device=device, component_id=action.component_id, kind=action.kind, state__in=OPEN
        ).exists():
            continue
        QueuedAction.objects.filter(pk=action.pk, state=QueuedAction.State.CANCELLED).update(
            state=QueuedAction.State.QUEUED, settled_at=None, delivery=None, delivered_at=None,
            reason="queued again: device back in service",
        )
        reopened.append(action.pk)
    return reopened
