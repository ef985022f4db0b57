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


def resolve_at_contact(device: Device, *, now, snapshot=None, world=None) -> resolution.Resolution:
    """The device's desired state; queued actions that its reported state already settles
    are settled, and held compromised versions get a tracked removal."""
    result = resolution.resolve(device, now=now, snapshot=snapshot, world=world)
    for settled in result.settle:
        QueuedAction.objects.filter(pk=settled.action_id, state__in=OPEN).update(
            state=settled.state, reason=settled.reason[:300], settled_at=now
        )
    if result.untracked_compromised:
        _track_compromised_removals(device, result, now)
    return result


def _track_compromised_removals(device, result, now) -> None:
    """A device found holding a compromised version the fan-out did not know about (or
    before the fan-out reached it): its removal (and the replacement the security officer
    chose) is tracked like the others."""
    versions = result.untracked_compromised
    responses = {
        r.version_id: r for r in CompromiseResponse.objects.filter(version__in=[v.pk for v in versions])
    }
    QueuedAction.objects.bulk_create(
        [
            action
            for v in versions
            for action in _compromise_actions(device.pk, v.component_id, v.pk, responses.get(v.pk))
        ],
        ignore_conflicts=True,
    )
    open_removals = dict(
        QueuedAction.objects.filter(
            device=device, kind=QueuedAction.Kind.REMOVE, state__in=OPEN,
            component_id__in=[v.component_id for v in versions],
        ).values_list("component_id", "pk")
    )
    for decision in result.decisions:
        if decision.action == "remove" and decision.component and not decision.action_ids:
            if decision.component.pk in open_removals:
                decision.action_ids = [open_removals[decision.component.pk]]


def _compromise_actions(device_id, component_id, version_id, response) -> list[QueuedAction]:
    """The removal of a compromised version from one holder, and the install of the
    replacement the security officer named (after the removal, at a later contact)."""
    actions = [QueuedAction(
        device_id=device_id, component_id=component_id, version_id=version_id, kind=QueuedAction.Kind.REMOVE,
        compromise=response, reason="version marked compromised",
    )]
    if response is not None and response.replacement_id is not None:
        actions.append(QueuedAction(
            device_id=device_id, component_id=component_id, version_id=response.replacement_id,
            kind=QueuedAction.Kind.INSTALL, compromise=response,
            reason="replacement chosen for a compromised version",
        ))
    return actions


def link_deliveries(items: list[DeliveryItem], actions_by_key: dict[tuple[str, str], list[int]], *, now) -> None:
    """Queued actions carried by an Update point at the DeliveryItem that carried them
    (keyed by delivery kind and component id key)."""
    for item in items:
        action_ids = actions_by_key.get((item.kind, item.component_key))
        if action_ids:
            QueuedAction.objects.filter(pk__in=action_ids, state__in=OPEN).update(
                state=QueuedAction.State.DELIVERED, delivery=item, delivered_at=now
            )


def settle_succeeded(items: list[DeliveryItem], *, now) -> int:
    return QueuedAction.objects.filter(
        delivery__in=[i.pk for i in items], state=QueuedAction.State.DELIVERED
    ).update(state=QueuedAction.State.SUCCEEDED, settled_at=now, reason="")


def settle_lost(items: list[DeliveryItem], *, now) -> int:
    """Deliveries a later report showed were not applied: their actions are due again; a loss
    is not a failure of the version (it does not count toward the retry limit)."""
    if not items:
        return 0
    return QueuedAction.objects.filter(
        delivery__in=[i.pk for i in items], state=QueuedAction.State.DELIVERED
    ).update(state=QueuedAction.State.QUEUED, reason="the Update was not applied (lost on the way); due again")


def settle_failed(items: list[DeliveryItem], *, now) -> None:
    """A failed delivery goes back to the queue until it failed TEEP_MAX_DELIVERY_FAILURES
    times; failures the agent called temporary do not count."""
    limit = settings.TEEP_MAX_DELIVERY_FAILURES
    for item in items:
        actions = QueuedAction.objects.filter(delivery_id=item.pk, state=QueuedAction.State.DELIVERED)
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


REMOVE_ONLY = "remove only"


def replacement_choices(version: ComponentVersion) -> list[dict]:
    """What each holder of `version` can get instead: nothing (remove only, the default) or
    one named released version of the same component; for each, on how many of the holders
    it failed before (and on how many it failed so often that it would not be offered again),
    so the security officer sees a fallback that is known not to work."""
    holders = InstalledComponent.objects.filter(version=version).values("device_id")
    limit = settings.TEEP_MAX_DELIVERY_FAILURES
    failed_on = {
        version_id: (devices, blocked)
        for version_id, devices, blocked in _failures_by_version(version, holders, limit)
    }
    choices = [{"version": None, "label": REMOVE_ONLY, "sequence_number": None, "failed_on": 0, "blocked_on": 0,
                "warning": "", "description": "each holder removes it; nothing older is installed automatically "
                                               "(a newer release still is, by policy)"}]
    candidates = version.component.versions.filter(state=ComponentVersion.State.RELEASED).exclude(
        pk=version.pk).order_by("-sequence_number")
    for candidate in candidates:
        devices, blocked = failed_on.get(candidate.pk, (0, 0))
        warning = ""
        if devices:
            warning = f"failed before on {devices} of these devices"
            if blocked:
                warning += f" ({blocked} of them {limit} times or more: it would not be offered to them again)"
        choices.append({
            "version": candidate, "label": candidate.version_label, "sequence_number": candidate.sequence_number,
            "failed_on": devices, "blocked_on": blocked, "warning": warning,
            "description": ("older than the compromised version: a downgrade"
                            if candidate.sequence_number < version.sequence_number else "a newer release"),
        })
    return choices


def _failures_by_version(version, holders, limit) -> list[tuple[int, int, int]]:
    """(version id, holders it failed on, holders it failed on `limit` times or more)."""
    per_device = (
        DeliveryItem.objects.filter(device__in=holders, state=DeliveryItem.State.FAILED, retryable=False,
                                    version__component=version.component_id)
        .values("version_id", "device_id").annotate(n=Count("id")).order_by()
    )
    summary: dict[int, list[int]] = {}
    for row in per_device:
        entry = summary.setdefault(row["version_id"], [0, 0])
        entry[0] += 1
        entry[1] += row["n"] >= limit
    return [(version_id, devices, blocked) for version_id, (devices, blocked) in summary.items()]


def compromise_preview(version: ComponentVersion) -> dict:
    """What marking `version` compromised will do: for the confirmation page and the API."""
    holders = InstalledComponent.objects.filter(version=version).values("device_id").distinct().count()
    policies = []
    for policy in Policy.objects.filter(component=version.component, effect=Effect.REQUIRED).select_related(
        "group", "version"
    ):
        if policy.version_id == version.pk:
            note = ("pins the compromised version: nothing is installed for its group until the policy "
                    "names another version")
        elif policy.version_id:
            note = f"pins version {policy.version.version_label}: its group keeps getting that version"
        else:
            note = ("latest released: holders get the replacement chosen below (or a newer release); other "
                    "devices of the group get the newest released version that is not compromised")
        policies.append((policy, note))
    return {"version": version, "holders": holders, "choices": replacement_choices(version),
            "policies": policies, "already": version.state == ComponentVersion.State.COMPROMISED}


@transaction.atomic(durable=True)
def mark_compromised(version: ComponentVersion, *, actor, reason: str, replacement: ComponentVersion | None = None,
                     request=None) -> CompromiseResponse:
    """Forbid `version` everywhere at once and start the fan-out (after commit): each holder
    removes it and then gets `replacement` (None: remove only). The choice is audited.

    The caller checks the permission (components.mark_compromised)."""
    reason = (reason or "").strip()
    if not reason:
        raise PolicyError("a reason is required to mark a version compromised")
    version = lock_version(version.pk)
    if version.state == ComponentVersion.State.COMPROMISED:
        raise PolicyError(f"{version} is already marked compromised")
    if replacement is not None:
        if replacement.pk == version.pk or replacement.component_id != version.component_id:
            raise PolicyError("the replacement must be another version of the same component")
        if replacement.state != ComponentVersion.State.RELEASED:
            raise PolicyError(f"the replacement {replacement} is {replacement.get_state_display().lower()}; "
                              "only a released version can replace it")
    choice = next((c for c in replacement_choices(version)
                   if (c["version"].pk if c["version"] else None) == (replacement.pk if replacement else None)), None)
    before = {"state": version.state}
    version.state = ComponentVersion.State.COMPROMISED
    version.state_changed_reason = reason
    version.updated_by = _user(actor)
    version.save(update_fields=["state", "state_changed_reason", "updated_by", "updated_at"])
    holders = InstalledComponent.objects.filter(version=version).values("device_id").distinct().count()
    response = CompromiseResponse.objects.create(
        version=version,
        reason=reason,
        replacement=replacement,
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
        detail={
            "holders": holders, "compromise_response": response.pk,
            "replacement": {"version": replacement.pk, "label": replacement.version_label} if replacement else None,
            "choice": replacement.version_label if replacement else REMOVE_ONLY,
            "replacement_warning": (choice or {}).get("warning", ""),
        },
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
                    action
                    for device_id in device_ids
                    for action in _compromise_actions(device_id, version.component_id, version.pk, response)
                ],
                ignore_conflicts=True,
            )
            # An operator's removal already open for the same component now serves this response.
            QueuedAction.objects.filter(
                device_id__in=device_ids, component_id=version.component_id, kind=QueuedAction.Kind.REMOVE,
                state__in=OPEN, compromise__isnull=True,
            ).exclude(
                device_id__in=QueuedAction.objects.filter(
                    compromise_id=response.pk, kind=QueuedAction.Kind.REMOVE).values("device_id")
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
    """Counts derived from the response's queued actions (never stored).

    Removals: `removed` = confirmed (a Success, or a later report no longer listing it);
    `delivered` = delivered, not confirmed (the Update went out; no answer or report since);
    `queued` = due at the device's next contact (`not_contacted`: no contact since it was
    queued); `failed`; `cancelled`. `still_held`: devices whose last report still lists the
    version. Replacement installs (when one was chosen) are counted under `replacement`."""
    State = QueuedAction.State
    not_contacted = Q(state=State.QUEUED) & (
        Q(device__last_contact_at__isnull=True) | Q(device__last_contact_at__lt=F("created_at"))
    )
    removal = Q(kind=QueuedAction.Kind.REMOVE)
    install = ~removal
    counts = QueuedAction.objects.filter(compromise=response).aggregate(
        total=Count("id", filter=removal),
        queued=Count("id", filter=removal & Q(state=State.QUEUED)),
        delivered=Count("id", filter=removal & Q(state=State.DELIVERED)),
        removed=Count("id", filter=removal & Q(state=State.SUCCEEDED)),
        failed=Count("id", filter=removal & Q(state=State.FAILED)),
        cancelled=Count("id", filter=removal & Q(state=State.CANCELLED)),
        not_contacted=Count("id", filter=removal & not_contacted),
        replacement_total=Count("id", filter=install),
        replacement_installed=Count("id", filter=install & Q(state=State.SUCCEEDED)),
        replacement_failed=Count("id", filter=install & Q(state=State.FAILED)),
    )
    counts["delivered_not_confirmed"] = counts["delivered"]
    counts["pending"] = counts["delivered"] + counts["queued"] - counts["not_contacted"]
    counts["still_held"] = InstalledComponent.objects.filter(version_id=response.version_id).count()
    counts["replacement"] = {
        "version": response.replacement.version_label if response.replacement_id else None,
        "total": counts.pop("replacement_total"),
        "installed": counts.pop("replacement_installed"),
        "failed": counts.pop("replacement_failed"),
    }
    counts["fanout_finished"] = response.fanout_finished_at is not None
    return counts


# --- Housekeeping (Celery beat) --------------------------------------------------------------------


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
