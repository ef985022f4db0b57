"""A device's desired state, computed when it contacts the TAM (and for the admin's "why").

The rule, per Trusted Component C on device D (first match decides, top to bottom):

1. A version marked **compromised** is forbidden everywhere: if D holds it, it is removed;
   it is never installed. Nothing (policy, override, queued action, agent request) overrides
   this.
2. **Which rules apply to C on D**: a per-device override for (D, C), if there is one,
   replaces every group policy for C ("exempt" = no rule at all). Otherwise the policies for
   C of every group D belongs to apply together, and:
   - **forbidden wins**: a forbidden policy for the whole component beats any required one;
     a forbidden policy naming a version forbids that version only;
   - among required policies a pinned version beats "latest released", and of several
     pinned versions the highest sequence number wins (a device is never asked to roll back).
3. **Removal** of what D holds, when: its version is compromised (1); C is forbidden; its
   version is forbidden; an operator queued a removal; or the agent listed C's manifest as
   unneeded. A component that a policy *requires* is not removed because of a queued removal
   or of the agent's unneeded list (it would be reinstalled at the next contact); the
   queued removal fails with that reason and the admin says so. Use an override
   ("forbidden" or "exempt") to remove a required component from one device.
4. **Installation or update** to a target version, when C is not forbidden and the target
   is released and not forbidden. The target is the required version (pinned, or the newest
   allowed released version), else the version a queued install/update names (or the newest
   allowed), else, for a component the agent requested (RequestTA) or already holds, the
   newest allowed released version (at least the requested sequence number). It is due when
   D does not hold C, or holds an older sequence number. A required version older than what
   D holds is not installed (SUIT refuses rollback); a held component whose version the TAM
   cannot recognise is left alone.
5. Nothing new is sent about C while an earlier Update about C is unanswered (token not yet
   expired), after ERR_TEMPORARY_ERROR until the back-off ends, nor once a version failed
   TEEP_MAX_DELIVERY_FAILURES times on D (queued actions count their own attempts).
6. Removal of a compromised or forbidden version comes first; the fixed version (what step 4
   gives) is installed at the following contact, once the removal succeeded.

Queued actions that the device's reported state already satisfies are settled at the
contact without a delivery (a removal of something D no longer holds, an install of what
it already holds); those the rule blocks fail with the reason.

Queries per contact are bounded (about a dozen) whatever the fleet size or number of
policies: policy changes never write one row per device.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q

from apps.components.models import ComponentVersion, TrustedComponent
from apps.devices.models import DeliveryItem, Device
from apps.policies.models import DeviceGroup, DeviceOverride, Effect, Policy, QueuedAction

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


@dataclass
class ComponentRule:
    required: bool = False
    pinned: ComponentVersion | None = None
    forbidden_all: bool = False
    forbidden_versions: set[int] = field(default_factory=set)
    source: str = ""  # what decided it, for people
    exempt: bool = False


def _describe_policy(policy: Policy) -> str:
    return f'group "{policy.group.name}" policy: {policy.effect}' + (
        f" {policy.version.version_label}" if policy.version_id else ""
    )


def rule_for(component_id: int, policies: list[Policy], override: DeviceOverride | None) -> ComponentRule:
    if override is not None:
        who = f"device override: {override.effect}" + (
            f" {override.version.version_label}" if override.version_id else ""
        )
        if override.effect == DeviceOverride.OverrideEffect.EXEMPT:
            return ComponentRule(source=who, exempt=True)
        if override.effect == Effect.FORBIDDEN:
            if override.version_id:
                return ComponentRule(forbidden_versions={override.version_id}, source=who)
            return ComponentRule(forbidden_all=True, source=who)
        return ComponentRule(required=True, pinned=override.version, source=who)
    rule = ComponentRule()
    forbidding = [p for p in policies if p.effect == Effect.FORBIDDEN]
    requiring = [p for p in policies if p.effect == Effect.REQUIRED]
    whole = [p for p in forbidding if not p.version_id]
    if whole:
        rule.forbidden_all = True
        rule.source = _describe_policy(whole[0]) + (
            f" (wins over {len(requiring)} required polic{'y' if len(requiring) == 1 else 'ies'})"
            if requiring else ""
        )
        return rule
    rule.forbidden_versions = {p.version_id for p in forbidding}
    if requiring:
        rule.required = True
        pinned = [p for p in requiring if p.version_id]
        if pinned:
            chosen = max(pinned, key=lambda p: p.version.sequence_number)
            rule.pinned = chosen.version
        else:
            chosen = requiring[0]
        rule.source = _describe_policy(chosen)
    elif forbidding:
        rule.source = "; ".join(_describe_policy(p) for p in forbidding)
    return rule


# --- The decision for a device -------------------------------------------------------------------


@dataclass
class Decision:
    """What is due for one component on one device, and why."""

    component_key: str
    component: TrustedComponent | None
    action: str  # "install", "update", "remove", "none"
    reason: str
    held: bool = False
    held_version: ComponentVersion | None = None
    held_sequence: int | None = None
    version: ComponentVersion | None = None  # install/update target; removal: held version
    manifest_key: str = ""
    waiting: bool = False  # due, but held back (in flight, back-off, failures)
    action_ids: list[int] = field(default_factory=list)  # queued actions it carries
    notes: list[str] = field(default_factory=list)

    @property
    def due(self) -> bool:
        return self.action != "none" and not self.waiting

    @property
    def name(self) -> str:
        return self.component.name if self.component else self.component_key


@dataclass
class Resolution:
    decisions: list[Decision] = field(default_factory=list)
    # (queued action id, new state, reason): settled at the contact without a delivery.
    settle: list[tuple[int, str, str]] = field(default_factory=list)
    # Held compromised versions without an open removal: version ids (tracked at contact).
    untracked_compromised: list[ComponentVersion] = field(default_factory=list)
    groups: list[DeviceGroup] = field(default_factory=list)


def resolve(device: Device, *, now) -> Resolution:
    """Desired state of `device` against its recorded state; no writes."""
    result = Resolution()
    held = {
        row.component_key: row
        for row in device.installed_components.select_related("version", "component")
    }
    result.groups = groups_of(device)
    policies_by_component = defaultdict(list)
    for policy in Policy.objects.filter(group__in=result.groups).select_related("group", "version"):
        policies_by_component[policy.component_id].append(policy)
    overrides = {
        o.component_id: o for o in DeviceOverride.objects.filter(device=device).select_related("version")
    }
    actions = list(
        QueuedAction.objects.filter(device=device, state__in=OPEN).select_related("version", "delivery__token")
    )
    in_flight = set(
        DeliveryItem.objects.filter(
            device=device, state=DeliveryItem.State.SENT, token__expires_at__gt=now
        ).values_list("component_key", flat=True)
    )
    failures = Counter(
        dict(
            DeliveryItem.objects.filter(device=device, state=DeliveryItem.State.FAILED, retryable=False)
            .values("version_id").annotate(n=Count("id")).values_list("version_id", "n")
        )
    )
    backoff = bool(device.backoff_until and device.backoff_until > now)
    max_failures = settings.TEEP_MAX_DELIVERY_FAILURES

    # Every component concerned, from the catalogue in one query.
    requested = {r["component_key"]: r for r in device.requested_components}
    unneeded = set(device.unneeded_manifests)
    component_ids = (
        set(policies_by_component) | set(overrides) | {a.component_id for a in actions}
    )
    components = {
        c.pk: c
        for c in TrustedComponent.objects.filter(
            Q(pk__in=component_ids) | Q(component_id__in=set(held) | set(requested))
            | Q(manifest_component_id__in=unneeded)
        )
    }
    by_key = {c.component_id: c for c in components.values()}
    by_manifest = {c.manifest_component_id: c for c in components.values()}
    released = defaultdict(list)  # component pk -> released versions, newest first
    for version in (
        ComponentVersion.objects.filter(component__in=components, state=ComponentVersion.State.RELEASED)
        .defer("envelope").order_by("component_id", "-sequence_number")
    ):
        released[version.component_id].append(version)
    actions_by_component = defaultdict(list)
    for action in actions:
        actions_by_component[action.component_id].append(action)

    keys = set(held) | set(requested) | {c.component_id for c in components.values()}
    unneeded_unknown = {m for m in unneeded if m not in by_manifest}
    for key in sorted(keys):
        component = by_key.get(key)
        decision = _decide(
            key=key,
            component=component,
            held=held.get(key),
            requested=requested.get(key),
            unneeded=component is not None and component.manifest_component_id in unneeded,
            rule=rule_for(component.pk, policies_by_component.get(component.pk, []),
                          overrides.get(component.pk)) if component else ComponentRule(),
            released=released.get(component.pk, []) if component else [],
            actions=actions_by_component.get(component.pk, []) if component else [],
            result=result,
        )
        if decision is None:
            continue
        decision.reason = "; ".join(filter(None, [decision.reason, *decision.notes]))
        if decision.action != "none":
            if key in in_flight:
                decision.waiting, decision.reason = True, decision.reason + "; waiting for the answer to an earlier Update"
            elif backoff:
                decision.waiting, decision.reason = True, decision.reason + "; agent asked to back off (temporary error)"
            elif decision.action in ("install", "update") and failures[decision.version.pk] >= max_failures \
                    and not decision.action_ids:
                decision.waiting = True
                decision.reason += f"; failed {failures[decision.version.pk]} times on this device, not offered again"
        result.decisions.append(decision)
    # Unneeded manifests the catalogue does not know: unlinked as the agent asked.
    for manifest_key in sorted(unneeded_unknown):
        waiting = manifest_key in in_flight or backoff
        result.decisions.append(Decision(
            component_key=manifest_key, component=None, action="remove", manifest_key=manifest_key,
            reason="agent reported it unneeded" + ("; waiting" if waiting else ""), waiting=waiting,
        ))
    return result


def _decide(*, key, component, held, requested, unneeded, rule, released, actions, result) -> Decision | None:
    held_version = held.version if held else None
    decision = Decision(
        component_key=key,
        component=component,
        action="none",
        reason="",
        held=held is not None,
        held_version=held_version,
        held_sequence=held.sequence_number if held else None,
        manifest_key=component.manifest_component_id if component else key,
    )
    removals = [a for a in actions if a.kind == QueuedAction.Kind.REMOVE]
    installs = [a for a in actions if a.kind != QueuedAction.Kind.REMOVE]

    def settle(action_list, state, reason):
        for action in action_list:
            result.settle.append((action.pk, state, reason))

    def version_forbidden(version) -> bool:
        return (
            version.state == ComponentVersion.State.COMPROMISED
            or rule.forbidden_all
            or version.pk in rule.forbidden_versions
        )

    allowed = [v for v in released if not version_forbidden(v)]
    newest_allowed = allowed[0] if allowed else None

    # 3. Removal of what it holds.
    if held is not None:
        remove_reason = ""
        if held_version is not None and held_version.state == ComponentVersion.State.COMPROMISED:
            remove_reason = f"version {held_version.version_label} marked compromised"
            if not removals:
                result.untracked_compromised.append(held_version)
        elif rule.forbidden_all:
            remove_reason = f"forbidden by {rule.source}"
        elif held_version is not None and held_version.pk in rule.forbidden_versions:
            remove_reason = f"version {held_version.version_label} forbidden by {rule.source}"
        if remove_reason:
            decision.action, decision.version, decision.reason = "remove", held_version, remove_reason
            decision.action_ids = [a.pk for a in removals]
            if rule.forbidden_all:
                settle(installs, QueuedAction.State.FAILED, f"forbidden by {rule.source}")
            elif installs:
                decision.reason += "; the queued install follows at a later contact"
            return decision

        matching = [a for a in removals if a.version_id is None or a.version_id == (held_version and held_version.pk)]
        settle([a for a in removals if a not in matching], QueuedAction.State.SUCCEEDED,
               "the device no longer holds that version")
        if rule.required and (matching or unneeded):
            why = "queued removal" if matching else "agent reported it unneeded"
            decision.notes.append(f"kept: required by {rule.source} ({why} ignored)")
            settle(matching, QueuedAction.State.FAILED, f"required by {rule.source}; use a device override")
            removals = []
        elif matching or unneeded:
            decision.action, decision.version = "remove", held_version
            decision.reason = "removal queued by an operator" if matching else "agent reported it unneeded"
            decision.action_ids = [a.pk for a in matching]
            if installs:
                decision.reason += "; the queued install follows at a later contact"
            return decision
    else:
        settle(removals, QueuedAction.State.SUCCEEDED, "not held when the device reported its components")
        if unneeded:
            decision.action, decision.reason = "remove", "agent reported it unneeded"
            return decision

    # 4. Installation or update.
    if component is None:
        if held is None:
            return None
        decision.reason = "not in the catalogue; left alone"
        return decision
    target, source = None, ""
    if rule.forbidden_all:
        settle(installs, QueuedAction.State.FAILED, f"forbidden by {rule.source}")
        decision.reason = f"not installed: forbidden by {rule.source}"
        return decision
    if rule.required:
        if rule.pinned is not None:
            target, source = rule.pinned, f"required by {rule.source}"
            if version_forbidden(rule.pinned) or rule.pinned.state != ComponentVersion.State.RELEASED:
                decision.reason = (
                    f"{rule.source}, but version {rule.pinned.version_label} is "
                    f"{'forbidden' if version_forbidden(rule.pinned) else rule.pinned.get_state_display().lower()}"
                )
                settle(installs, QueuedAction.State.FAILED, decision.reason)
                return decision
        else:
            target, source = newest_allowed, f"required by {rule.source} (latest released)"
    queued_versions = [a.version for a in installs if a.version_id]
    if target is None and installs:
        explicit = max(queued_versions, key=lambda v: v.sequence_number) if queued_versions else None
        if explicit is not None and (version_forbidden(explicit) or explicit.state != ComponentVersion.State.RELEASED):
            reason = f"version {explicit.version_label} is " + (
                "forbidden" if version_forbidden(explicit) else explicit.get_state_display().lower())
            settle(installs, QueuedAction.State.FAILED, reason)
            decision.reason = f"queued install not delivered: {reason}"
            return decision
        target = explicit or newest_allowed
        source = f"{installs[0].get_kind_display().lower()} queued by an operator"
    if target is None and requested is not None:
        minimum = requested.get("min_sequence_number")
        target = next((v for v in allowed if minimum is None or v.sequence_number >= minimum), None)
        source = "requested by the agent"
    if target is None and held is not None and held.sequence_number is not None:
        target, source = newest_allowed, "newer released version"

    if target is None:
        if installs:
            settle(installs, QueuedAction.State.FAILED, "no released version that the policy allows")
        decision.reason = "no released version to offer" if (installs or requested or rule.required) else (
            rule.source or "nothing to do")
        return decision if (held or requested or rule.source or installs) else None
    decision.version = target
    if held is None:
        decision.action, decision.reason = "install", source
        decision.action_ids = [a.pk for a in installs]
        return decision
    if held.sequence_number is None:
        decision.reason = "holds a version the TAM cannot recognise; left alone"
        settle(installs, QueuedAction.State.FAILED, decision.reason)
        return decision
    if target.sequence_number > held.sequence_number:
        decision.action, decision.reason = "update", source
        decision.action_ids = [a.pk for a in installs]
        return decision
    # Holds the target or newer: queued installs/updates are already satisfied.
    settle([a for a in installs if not a.version_id or a.version.sequence_number <= held.sequence_number],
           QueuedAction.State.SUCCEEDED, "the device already holds it")
    settle([a for a in installs if a.version_id and a.version.sequence_number > held.sequence_number],
           QueuedAction.State.FAILED, f"{source} holds it back at an older version")
    decision.reason = f"up to date ({source})" if target.sequence_number == held.sequence_number else (
        f"holds a newer version than {source} names; not rolled back")
    if not rule.source and not installs and not requested and source == "newer released version":
        decision.reason = "up to date"
    return decision


def explain_due(device: Device, *, now=None) -> list[Decision]:
    """Per component: the action due at the device's next contact and the rule behind it,
    computed from its last recorded state (read only)."""
    from django.utils import timezone

    return resolve(device, now=now or timezone.now()).decisions
