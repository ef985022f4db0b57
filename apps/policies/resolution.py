"""A device's desired state, computed when it contacts the TAM (and for the admin's "why").

The rule itself is apps.policies.decision (a pure function per component; its docstring
lists the rules in order). This module loads the facts it needs for one device in a bounded
number of queries (whatever the fleet size or the number of policies: policy changes never
write one row per device) and collects the results into a Resolution.

Which policies apply to a component C on device D (rule_for):
- a per-device override for (D, C), if there is one, replaces every group policy for C
  ("exempt" = no rule at all);
- otherwise the policies for C of every group D belongs to apply together: **forbidden
  wins** (a forbidden policy for the whole component beats any required one; one naming a
  version forbids that version only), and among required policies a pinned version beats
  "latest released", the highest pinned sequence number winning (never a rollback).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q

from apps.components.models import ComponentVersion, TrustedComponent
from apps.devices.models import DeliveryItem, Device
from apps.policies import decision
from apps.policies.models import (
    CompromiseResponse,
    DeviceGroup,
    DeviceOverride,
    Effect,
    Policy,
    QueuedAction,
)

OPEN = QueuedAction.OPEN_STATES


# --- Groups ---------------------------------------------------------------------------------


def _load_groups():
    return list(DeviceGroup.objects.prefetch_related("rules", "tags"))


def group_matches(group: DeviceGroup, tag_ids: set[int], attributes: dict) -> bool:
    """Membership as DeviceGroup's docstring says; the same test as members()."""
    if group.all_devices:
        return True
    group_tags = {t.pk for t in group.tags.all()}
    rules = list(group.rules.all())
    if not group_tags and not rules:
        return False
    if group_tags and not (group_tags & tag_ids):
        return False
    return all(rule.matches(attributes or {}) for rule in rules)


def groups_of(device: Device, groups=None) -> list[DeviceGroup]:
    groups = _load_groups() if groups is None else groups
    tag_ids = set(device.tags.values_list("pk", flat=True))
    return [g for g in groups if group_matches(g, tag_ids, device.attributes)]


def members(group: DeviceGroup):
    """The devices of a group, as a queryset (for queuing actions on a whole group)."""
    if group.all_devices:
        return Device.objects.all()
    tag_ids = list(group.tags.values_list("pk", flat=True))
    rules = list(group.rules.all())
    if not tag_ids and not rules:
        return Device.objects.none()
    condition = Q()
    if tag_ids:
        condition &= Q(pk__in=Device.tags.through.objects.filter(tag_id__in=tag_ids).values("device_id"))
    for rule in rules:
        condition &= rule.as_q()
    return Device.objects.filter(condition)


# --- The rule for one component ----------------------------------------------------------------


def version_facts(version: ComponentVersion | None) -> decision.Version | None:
    if version is None:
        return None
    return decision.Version(version.pk, version.component_id, version.version_label,
                            version.sequence_number, version.state)


VERSION_FIELDS = ("id", "component_id", "version_label", "sequence_number", "state")


def _describe_policy(policy: Policy) -> str:
    return f'group "{policy.group.name}" policy: {policy.effect}' + (
        f" {policy.version.version_label}" if policy.version_id else ""
    )


def rule_for(policies: list[Policy], override: DeviceOverride | None) -> decision.Rule:
    if override is not None:
        who = f"device override: {override.effect}" + (
            f" {override.version.version_label}" if override.version_id else ""
        )
        if override.effect == DeviceOverride.OverrideEffect.EXEMPT:
            return decision.Rule(source=who, exempt=True)
        if override.effect == Effect.FORBIDDEN:
            if override.version_id:
                return decision.Rule(forbidden_versions=frozenset({override.version_id}), source=who)
            return decision.Rule(forbidden_all=True, source=who)
        return decision.Rule(required=True, pinned=version_facts(override.version), source=who)
    forbidding = [p for p in policies if p.effect == Effect.FORBIDDEN]
    requiring = [p for p in policies if p.effect == Effect.REQUIRED]
    whole = [p for p in forbidding if not p.version_id]
    if whole:
        source = _describe_policy(whole[0]) + (
            f" (wins over {len(requiring)} required polic{'y' if len(requiring) == 1 else 'ies'})"
            if requiring else ""
        )
        return decision.Rule(forbidden_all=True, source=source)
    forbidden_versions = frozenset(p.version_id for p in forbidding)
    if requiring:
        pinned = [p for p in requiring if p.version_id]
        chosen = max(pinned, key=lambda p: p.version.sequence_number) if pinned else requiring[0]
        return decision.Rule(required=True, pinned=version_facts(chosen.version) if pinned else None,
                             forbidden_versions=forbidden_versions, source=_describe_policy(chosen))
    source = "; ".join(_describe_policy(p) for p in forbidding)
    return decision.Rule(forbidden_versions=forbidden_versions, source=source)


# --- The decision for a device -------------------------------------------------------------------

Decision = decision.Decision


@dataclass
class Resolution:
    decisions: list[Decision] = field(default_factory=list)
    # Queued actions settled at the contact without a delivery.
    settle: list[decision.Settle] = field(default_factory=list)
    # Held compromised versions without an open removal (tracked at contact).
    untracked_compromised: list[decision.Version] = field(default_factory=list)
    groups: list[DeviceGroup] = field(default_factory=list)


def resolve(device: Device, *, now) -> Resolution:
    """Desired state of `device` against its recorded state; no writes.

    "In flight" are deliveries still unanswered (token not expired). At a contact the TAM first
    settles every delivery issued before the device's current check from what it reported
    (apps.devices.services.reconcile_deliveries), so what remains in flight then is only what a
    concurrent session sent."""
    result = Resolution()
    held = {
        row.component_key: row
        for row in device.installed_components.select_related("version")
    }
    result.groups = groups_of(device)
    policies_by_component = defaultdict(list)
    for policy in Policy.objects.filter(group__in=result.groups).select_related("group", "version"):
        policies_by_component[policy.component_id].append(policy)
    overrides = {
        o.component_id: o for o in DeviceOverride.objects.filter(device=device).select_related("version")
    }
    # Open actions, and the compromise responses the device was a holder of (floors).
    actions_by_component = defaultdict(list)
    floors_by_component = defaultdict(list)
    for action in QueuedAction.objects.filter(
        Q(state__in=OPEN) | Q(compromise__isnull=False), device=device
    ).select_related("version", "compromise__version"):
        if action.compromise_id is not None and action.kind == QueuedAction.Kind.REMOVE:
            floors_by_component[action.component_id].append(decision.Floor(
                sequence_number=action.compromise.version.sequence_number,
                replacement_pk=action.compromise.replacement_id,
            ))
        if action.state in OPEN:
            actions_by_component[action.component_id].append(
                decision.Action(pk=action.pk, kind=action.kind, version=version_facts(action.version))
            )
    in_flight = set(
        DeliveryItem.objects.filter(
            device=device, state=DeliveryItem.State.SENT, token__expires_at__gt=now
        ).values_list("component_key", flat=True)
    )
    failures = dict(
        DeliveryItem.objects.filter(device=device, state=DeliveryItem.State.FAILED, retryable=False)
        .values("version_id").annotate(n=Count("id")).values_list("version_id", "n")
    )
    # A held compromised version is a floor too, before the fan-out reached the device.
    held_compromised = [row.version for row in held.values()
                        if row.version is not None and row.version.state == ComponentVersion.State.COMPROMISED]
    if held_compromised:
        replacements = dict(CompromiseResponse.objects.filter(version__in=held_compromised)
                            .values_list("version_id", "replacement_id"))
        for version in held_compromised:
            floors_by_component[version.component_id].append(
                decision.Floor(version.sequence_number, replacements.get(version.pk)))
    conditions = decision.Conditions(
        backoff=bool(device.backoff_until and device.backoff_until > now),
        failures=failures,
        max_failures=settings.TEEP_MAX_DELIVERY_FAILURES,
    )

    # Every component concerned, from the catalogue in one query.
    requested = {r["component_key"]: r for r in device.requested_components}
    unneeded = set(device.unneeded_manifests)
    component_ids = set(policies_by_component) | set(overrides) | set(actions_by_component)
    components = {
        c.pk: c
        for c in TrustedComponent.objects.filter(
            Q(pk__in=component_ids) | Q(component_id__in=set(held) | set(requested))
            | Q(manifest_component_id__in=unneeded)
        ).only("pk", "component_id", "manifest_component_id", "name")
    }
    by_key = {c.component_id: c for c in components.values()}
    by_manifest = {c.manifest_component_id for c in components.values()}
    released = defaultdict(list)  # component pk -> released versions, newest first
    for row in (
        ComponentVersion.objects.filter(component__in=components, state=ComponentVersion.State.RELEASED)
        .order_by("component_id", "-sequence_number")
        .values_list(*VERSION_FIELDS)
    ):
        released[row[1]].append(decision.Version(*row))

    for key in sorted(set(held) | set(requested) | set(by_key)):
        component = by_key.get(key)
        row = held.get(key)
        facts = decision.ComponentFacts(
            key=key,
            component=decision.Component(component.pk, component.component_id, component.manifest_component_id,
                                         component.name) if component else None,
            held=decision.Held(version_facts(row.version), row.sequence_number) if row else None,
            requested=requested.get(key),
            unneeded=component is not None and component.manifest_component_id in unneeded,
            rule=rule_for(policies_by_component.get(component.pk, []), overrides.get(component.pk))
            if component else decision.Rule(),
            released=tuple(released.get(component.pk, ())) if component else (),
            actions=tuple(actions_by_component.get(component.pk, ())) if component else (),
            floors=tuple(floors_by_component.get(component.pk, ())) if component else (),
            in_flight=key in in_flight,
        )
        outcome = decision.decide(facts, conditions)
        result.settle.extend(outcome.settle)
        if outcome.untracked_compromised is not None:
            result.untracked_compromised.append(outcome.untracked_compromised)
        if outcome.decision is not None:
            result.decisions.append(outcome.decision)
    # Unneeded manifests the catalogue does not know: unlinked as the agent asked.
    for manifest_key in sorted(unneeded - by_manifest):
        result.decisions.append(decision.decide_unknown_unneeded(
            manifest_key, in_flight=manifest_key in in_flight, backoff=conditions.backoff))
    return result


def explain_due(device: Device, *, now=None) -> list[Decision]:
    """Per component: the action due at the device's next contact and the rule behind it,
    computed from its last recorded state (read only)."""
    from django.utils import timezone

    return resolve(device, now=now or timezone.now()).decisions
