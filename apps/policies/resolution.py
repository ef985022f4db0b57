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


@dataclass(frozen=True)
class OverrideFacts:
    """A DeviceOverride as rule_for needs it."""

    effect: str
    version: decision.Version | None


def rule_for(policies: list[Policy], override: OverrideFacts | None) -> decision.Rule:
    if override is not None:
        who = f"device override: {override.effect}" + (
            f" {override.version.version_label}" if override.version else ""
        )
        if override.effect == DeviceOverride.OverrideEffect.EXEMPT:
            return decision.Rule(source=who, exempt=True)
        if override.effect == Effect.FORBIDDEN:
            if override.version:
                return decision.Rule(forbidden_versions=frozenset({override.version.pk}), source=who)
            return decision.Rule(forbidden_all=True, source=who)
        return decision.Rule(required=True, pinned=override.version, source=who)
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

    @property
    def settled_state(self) -> bool:
        """Nothing due, nothing held back, nothing to settle: what the device holds is what it
        should hold, and stays so until it reports otherwise or the policy epoch changes (the
        policy check's fast path, apps/tam/engine.py)."""
        return not (self.settle or self.untracked_compromised) and all(d.action == "none" for d in self.decisions)


def resolve(device: Device, *, now, snapshot=None, world=None) -> Resolution:
    """Desired state of `device` against its recorded state; no writes.

    `snapshot` (apps.devices.snapshot) is what the TAM read with the device's row lock; without
    one (the admin's "why") it is read here. `world` (apps.policies.world): the catalogue and
    the policies of the snapshot's epoch.

    "In flight" are deliveries still unanswered (token not expired). At a contact the TAM first
    settles every delivery issued before the device's current check from what it reported
    (apps.devices.services.reconcile_deliveries), so what remains in flight then is only what a
    concurrent session sent."""
    from apps.devices import snapshot as snapshots
    from apps.policies import world as worlds

    snap = snapshot if snapshot is not None else snapshots.read(device.pk)
    world = world if world is not None else worlds.for_epoch(snap.epoch)
    device = snap.device if snapshot is None else device
    result = Resolution()
    held = snap.installed
    result.groups = world.groups_for(snap.tag_ids, device.attributes or {})
    policies_by_component = defaultdict(list)
    for group in result.groups:
        for policy in world.policies_by_group.get(group.pk, ()):
            policies_by_component[policy.component_id].append(policy)
    overrides = {
        o.component_id: OverrideFacts(o.effect, world.versions.get(o.version_id)) for o in snap.overrides
    }
    # Open actions, and the compromise responses the device was a holder of (floors).
    actions_by_component = defaultdict(list)
    floors_by_component = defaultdict(list)
    for action in snap.actions:
        if action.compromise_id is not None and action.kind == QueuedAction.Kind.REMOVE:
            compromised_pk, replacement_pk = world.compromises.get(action.compromise_id, (None, None))
            compromised = world.versions.get(compromised_pk)
            if compromised is not None:
                floors_by_component[action.component_id].append(decision.Floor(
                    sequence_number=compromised.sequence_number, replacement_pk=replacement_pk,
                ))
        if action.state in OPEN:
            actions_by_component[action.component_id].append(
                decision.Action(pk=action.pk, kind=action.kind, version=world.versions.get(action.version_id))
            )
    in_flight = {d.component_key for d in snap.unsettled
                 if d.state == DeliveryItem.State.SENT and d.expires_at and d.expires_at > now}
    # A held compromised version is a floor too, before the fan-out reached the device.
    for row in held.values():
        version = world.versions.get(row.version_id)
        if version is not None and version.state == ComponentVersion.State.COMPROMISED:
            floors_by_component[version.component_id].append(
                decision.Floor(version.sequence_number, world.replacement_of.get(version.pk)))
    conditions = decision.Conditions(
        backoff=bool(device.backoff_until and device.backoff_until > now),
        failures=snap.failures,
        max_failures=settings.TEEP_MAX_DELIVERY_FAILURES,
    )

    requested = {r["component_key"]: r for r in device.requested_components}
    unneeded = set(device.unneeded_manifests)
    concerned = set(policies_by_component) | set(overrides) | set(actions_by_component)
    by_key = {world.components[pk].component_id: world.components[pk] for pk in concerned
              if pk in world.components}
    for key in set(held) | set(requested):
        if key in world.by_key:
            by_key[key] = world.by_key[key]
    for manifest_key in unneeded:
        if manifest_key in world.by_manifest_key:
            component = world.by_manifest_key[manifest_key]
            by_key[component.component_id] = component
    by_manifest = {c.manifest_component_id for c in by_key.values()}

    for key in sorted(set(held) | set(requested) | set(by_key)):
        component = by_key.get(key)
        row = held.get(key)
        facts = decision.ComponentFacts(
            key=key,
            component=component,
            held=decision.Held(world.versions.get(row.version_id), row.sequence_number) if row else None,
            requested=requested.get(key),
            unneeded=component is not None and component.manifest_component_id in unneeded,
            rule=rule_for(policies_by_component.get(component.pk, []), overrides.get(component.pk))
            if component else decision.Rule(),
            released=world.released.get(component.pk, ()) if component else (),
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
