"""What is due for one Trusted Component on one device: a pure function, no database.

`decide(facts, conditions)` takes what the TAM knows about one component on one device
(what the device reported holding, requested or no longer needs; the policy rule; the
released versions; queued actions; compromise responses it was a holder of; whether an
Update about it is in flight) and returns the Decision (what to send, and why) and the
queued actions to settle without a delivery. apps.policies.resolution loads the facts and
apps.policies.services / apps.devices.services record the result.

The rules, first match decides (one small function each, in this order):

1. compromised     A held version marked compromised is removed. Nothing overrides this; it
                   is "urgent": back-off after ERR_TEMPORARY_ERROR does not delay it.
2. forbidden       C is forbidden (whole component) or the held version is: removed.
3. asked removal   An operator queued a removal, or the agent listed C's manifest as unneeded:
                   removed, unless a policy requires C (then the queued removal fails with
                   that reason: use a device override).
4. install/update  Target = the required version (pinned, or the newest allowed released
                   one); else the version a queued install/update names (or the newest
                   allowed); else, for a component the agent requested or holds, the newest
                   allowed released version (at least the requested sequence number). Due
                   when D does not hold C or holds an older sequence number; never a rollback;
                   a held version the TAM cannot recognise is left alone.
   "Allowed": released, not compromised, not forbidden; on a device that held a version
   marked compromised, automatic choices never go below that version (no silent downgrade)
   except to the replacement the security officer named (DESIGN decision; an explicit pin or
   queued version is the operator's own choice and is not limited).
5. hold back       A due change waits while an Update about C issued after the device's
                   current check is unanswered (concurrent session), while the agent's back-off
                   holds (except urgent removals), and an install of a version that failed
                   TEEP_MAX_DELIVERY_FAILURES times on D is not offered again (queued actions
                   count their own attempts).

A removed compromised or forbidden version is replaced in the same Update when rule 4 has a
target for the component once it is gone (the replacement the security officer named, a
newer release a policy requires, a queued install): TEEP 7.2.2 has the agent unlink the
unneeded manifests first and install only if that succeeded (DESIGN.md: each holder removes
it, and installs the fixed version where policy names one, at its next contact).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RELEASED = "released"
COMPROMISED = "compromised"
REMOVE = "remove"


# --- Facts (plain values; apps.policies.resolution builds them from the database) --------------


@dataclass(frozen=True)
class Version:
    pk: int
    component_id: int
    version_label: str
    sequence_number: int
    state: str  # draft, released, compromised, withdrawn

    @property
    def state_name(self) -> str:
        return self.state


@dataclass(frozen=True)
class Component:
    pk: int
    component_id: str  # component id key (CBOR hex)
    manifest_component_id: str
    name: str


@dataclass(frozen=True)
class Held:
    version: Version | None  # None: the TAM cannot tell which version
    sequence_number: int | None


@dataclass(frozen=True)
class Action:
    """An open queued action (queued or delivered)."""

    pk: int
    kind: str  # install, update, remove
    version: Version | None

    @property
    def kind_label(self) -> str:
        return self.kind.capitalize()


@dataclass(frozen=True)
class Rule:
    """What the device's policies (or its override) say about the component."""

    required: bool = False
    pinned: Version | None = None
    forbidden_all: bool = False
    forbidden_versions: frozenset[int] = frozenset()
    source: str = ""  # what decided it, for people
    exempt: bool = False


@dataclass(frozen=True)
class Floor:
    """A compromise response this device was a holder of (it held the compromised version)."""

    sequence_number: int  # of the compromised version
    replacement_pk: int | None  # the version the security officer named, None = remove only


@dataclass(frozen=True)
class ComponentFacts:
    key: str  # component id key
    component: Component | None  # None: not in the catalogue
    held: Held | None = None
    requested: Mapping | None = None  # {"min_sequence_number": int | None}
    unneeded: bool = False
    rule: Rule = Rule()
    released: tuple[Version, ...] = ()  # newest first
    actions: tuple[Action, ...] = ()
    floors: tuple[Floor, ...] = ()
    in_flight: bool = False  # an Update about it, issued after this check began, is unanswered


@dataclass(frozen=True)
class Conditions:
    backoff: bool = False  # the agent asked to back off (ERR_TEMPORARY_ERROR)
    failures: Mapping[int, int] = field(default_factory=dict)  # version pk -> counted failures
    max_failures: int = 3


# --- Results -------------------------------------------------------------------------------------


@dataclass
class Decision:
    """What is due for one component on one device, and why."""

    component_key: str
    component: Component | None
    action: str  # "install", "update", "remove", "none"
    reason: str
    held: bool = False
    held_version: Version | None = None
    held_sequence: int | None = None
    version: Version | None = None  # install/update target; removal: held version
    manifest_key: str = ""
    waiting: bool = False  # due, but held back (in flight, back-off, failures)
    urgent: bool = False  # removal of a compromised version: never held back by a back-off
    action_ids: list[int] = field(default_factory=list)  # queued actions it carries
    notes: list[str] = field(default_factory=list)
    # With a removal of a compromised or forbidden version: what the same Update installs.
    replacement: Version | None = None
    replacement_action_ids: list[int] = field(default_factory=list)

    @property
    def due(self) -> bool:
        return self.action != "none" and not self.waiting

    @property
    def name(self) -> str:
        return self.component.name if self.component else self.component_key


@dataclass(frozen=True)
class Settle:
    """A queued action settled at the contact without a delivery."""

    action_id: int
    state: str  # succeeded, failed
    reason: str


@dataclass
class Outcome:
    decision: Decision | None
    settle: list[Settle] = field(default_factory=list)
    # A held compromised version without an open removal: tracked at the contact.
    untracked_compromised: Version | None = None


# --- The decision ---------------------------------------------------------------------------------


def decide(facts: ComponentFacts, conditions: Conditions | None = None) -> Outcome:
    conditions = conditions or Conditions()
    outcome = Outcome(None)
    decision = _blank_decision(facts)
    for rule in (_compromised, _forbidden, _asked_removal, _install_or_update):
        result = rule(facts, decision, outcome)
        if result is not _NEXT:
            outcome.decision = result
            if rule in (_compromised, _forbidden):
                _replacement(facts, result, conditions)
            break
    if outcome.decision is not None:
        _finish(outcome.decision, facts, conditions)
    return outcome


def decide_unknown_unneeded(manifest_key: str, *, in_flight: bool, backoff: bool) -> Decision:
    """An unneeded manifest the catalogue does not know: unlinked as the agent asked."""
    waiting = in_flight or backoff
    return Decision(
        component_key=manifest_key, component=None, action=REMOVE, manifest_key=manifest_key,
        reason="agent reported it unneeded" + ("; waiting" if waiting else ""), waiting=waiting,
    )


_NEXT = object()  # a rule that does not apply: try the next one


def _blank_decision(facts: ComponentFacts) -> Decision:
    held = facts.held
    return Decision(
        component_key=facts.key,
        component=facts.component,
        action="none",
        reason="",
        held=held is not None,
        held_version=held.version if held else None,
        held_sequence=held.sequence_number if held else None,
        manifest_key=facts.component.manifest_component_id if facts.component else facts.key,
    )


def _removals(facts):
    return [a for a in facts.actions if a.kind == REMOVE]


def _installs(facts):
    return [a for a in facts.actions if a.kind != REMOVE]


def _settle(outcome: Outcome, actions, state: str, reason: str) -> None:
    outcome.settle.extend(Settle(a.pk, state, reason) for a in actions)


def _version_forbidden(version: Version, rule: Rule) -> bool:
    return version.state == COMPROMISED or rule.forbidden_all or version.pk in rule.forbidden_versions


def _above_floors(version: Version, floors) -> bool:
    return all(version.sequence_number > f.sequence_number or version.pk == f.replacement_pk for f in floors)


def _allowed(facts: ComponentFacts) -> list[Version]:
    """Released versions automatic choices may offer, newest first."""
    return [
        v for v in facts.released
        if v.state == RELEASED and not _version_forbidden(v, facts.rule) and _above_floors(v, facts.floors)
    ]


def _state_word(version: Version, rule: Rule) -> str:
    return "forbidden" if _version_forbidden(version, rule) else version.state


# Rule 1
def _compromised(facts, decision, outcome):
    version = decision.held_version
    if facts.held is None or version is None or version.state != COMPROMISED:
        return _NEXT
    removals = _removals(facts)
    if not removals:
        outcome.untracked_compromised = version
    decision.action, decision.version, decision.urgent = REMOVE, version, True
    decision.reason = f"version {version.version_label} marked compromised"
    decision.action_ids = [a.pk for a in removals]
    if facts.rule.forbidden_all:
        _settle(outcome, _installs(facts), "failed", f"forbidden by {facts.rule.source}")
    return decision


# Rule 2
def _forbidden(facts, decision, outcome):
    rule, version = facts.rule, decision.held_version
    if facts.held is None:
        return _NEXT
    if rule.forbidden_all:
        reason = f"forbidden by {rule.source}"
        _settle(outcome, _installs(facts), "failed", reason)
    elif version is not None and version.pk in rule.forbidden_versions:
        reason = f"version {version.version_label} forbidden by {rule.source}"
    else:
        return _NEXT
    decision.action, decision.version, decision.reason = REMOVE, version, reason
    decision.action_ids = [a.pk for a in _removals(facts)]
    return decision


# Rule 3
def _asked_removal(facts, decision, outcome):
    removals = _removals(facts)
    if facts.held is None:
        _settle(outcome, removals, "succeeded", "not held when the device reported its components")
        if facts.unneeded:
            decision.action, decision.reason = REMOVE, "agent reported it unneeded"
            return decision
        return _NEXT
    held_pk = decision.held_version.pk if decision.held_version else None
    matching = [a for a in removals if a.version is None or a.version.pk == held_pk]
    _settle(outcome, [a for a in removals if a not in matching], "succeeded",
            "the device no longer holds that version")
    if not (matching or facts.unneeded):
        return _NEXT
    why = "queued removal" if matching else "agent reported it unneeded"
    if facts.rule.required:
        decision.notes.append(f"kept: required by {facts.rule.source} ({why} ignored)")
        _settle(outcome, matching, "failed", f"required by {facts.rule.source}; use a device override")
        return _NEXT
    decision.action, decision.version = REMOVE, decision.held_version
    decision.reason = "removal queued by an operator" if matching else "agent reported it unneeded"
    decision.action_ids = [a.pk for a in matching]
    if _installs(facts):
        decision.reason += "; the queued install follows at a later contact"
    return decision


# Rule 4
def _install_or_update(facts, decision, outcome):
    installs, rule, held = _installs(facts), facts.rule, facts.held
    if facts.component is None:
        if held is None:
            return None
        decision.reason = "not in the catalogue; left alone"
        return decision
    if rule.forbidden_all:
        _settle(outcome, installs, "failed", f"forbidden by {rule.source}")
        decision.reason = f"not installed: forbidden by {rule.source}"
        return decision
    target, source, refusal = _target(facts)
    if refusal is not None:
        decision.reason, settle_reason = refusal
        _settle(outcome, installs, "failed", settle_reason)
        return decision
    if target is None:
        if installs:
            _settle(outcome, installs, "failed", "no released version that the policy allows")
        decision.reason = "no released version to offer" if (installs or facts.requested or rule.required) else (
            rule.source or "nothing to do")
        return decision if (held or facts.requested or rule.source or installs) else None
    decision.version = target
    if held is None:
        decision.action, decision.reason = "install", source
        decision.action_ids = [a.pk for a in installs]
        return decision
    if held.sequence_number is None:
        decision.reason = "holds a version the TAM cannot recognise; left alone"
        _settle(outcome, installs, "failed", decision.reason)
        return decision
    if target.sequence_number > held.sequence_number:
        decision.action, decision.reason = "update", source
        decision.action_ids = [a.pk for a in installs]
        return decision
    # Holds the target or newer: queued installs/updates are already satisfied.
    _settle(outcome, [a for a in installs if not a.version or a.version.sequence_number <= held.sequence_number],
            "succeeded", "the device already holds it")
    _settle(outcome, [a for a in installs if a.version and a.version.sequence_number > held.sequence_number],
            "failed", f"{source} holds it back at an older version")
    if target.sequence_number == held.sequence_number:
        decision.reason = f"up to date ({source})"
    else:
        decision.reason = f"holds a newer version than {source} names; not rolled back"
    if not rule.source and not installs and not facts.requested and source == "newer released version":
        decision.reason = "up to date"
    return decision


def _target(facts) -> tuple[Version | None, str, tuple[str, str] | None]:
    """(target version, why, refusal): the version to hold, or why none can be offered
    (refusal = (reason for people, reason for the queued actions that fail))."""
    rule, installs = facts.rule, _installs(facts)
    allowed = _allowed(facts)
    newest = allowed[0] if allowed else None
    if rule.required:
        if rule.pinned is not None:
            pinned = rule.pinned
            if _version_forbidden(pinned, rule) or pinned.state != RELEASED:
                refusal = f"{rule.source}, but version {pinned.version_label} is {_state_word(pinned, rule)}"
                return None, "", (refusal, refusal)
            return pinned, f"required by {rule.source}", None
        if newest is not None:
            return newest, f"required by {rule.source} (latest released)", None
    if installs:
        named = [a.version for a in installs if a.version]
        explicit = max(named, key=lambda v: v.sequence_number) if named else None
        if explicit is not None and (_version_forbidden(explicit, rule) or explicit.state != RELEASED):
            refusal = f"version {explicit.version_label} is {_state_word(explicit, rule)}"
            return None, "", (f"queued install not delivered: {refusal}", refusal)
        target = explicit or newest
        if target is not None:
            return target, f"{installs[0].kind_label.lower()} queued by an operator", None
    if facts.requested is not None:
        minimum = facts.requested.get("min_sequence_number")
        target = next((v for v in allowed if minimum is None or v.sequence_number >= minimum), None)
        if target is not None:
            return target, "requested by the agent", None
    if facts.held is not None and facts.held.sequence_number is not None and newest is not None:
        return newest, "newer released version", None
    return None, "", None


def _replacement(facts: ComponentFacts, decision: Decision, conditions: Conditions) -> None:
    """What rule 4 would install once the removed version is gone, sent in the same Update."""
    if facts.rule.forbidden_all or decision.action != REMOVE:
        return
    without = ComponentFacts(
        key=facts.key, component=facts.component, held=None, requested=facts.requested, rule=facts.rule,
        released=facts.released, actions=tuple(_installs(facts)), floors=facts.floors,
    )
    scratch = Outcome(None)  # settling queued actions is rule 4's business at a later contact
    target = _install_or_update(without, _blank_decision(without), scratch)
    if target is None or target is _NEXT or target.action != "install":
        return
    failed = conditions.failures.get(target.version.pk, 0)
    if failed >= conditions.max_failures and not target.action_ids:
        decision.notes.append(f"not replaced by {target.version.version_label}: failed {failed} times on this "
                              "device")
        return
    decision.replacement, decision.replacement_action_ids = target.version, target.action_ids
    decision.notes.append(f"replaced by {target.version.version_label} in the same Update ({target.reason})")


# Rule 5
def _finish(decision: Decision, facts: ComponentFacts, conditions: Conditions) -> None:
    decision.reason = "; ".join(filter(None, [decision.reason, *decision.notes]))
    if decision.action == "none":
        return
    if facts.in_flight:
        decision.waiting = True
        decision.reason += "; waiting for the answer to an earlier Update"
    elif conditions.backoff and not decision.urgent:
        decision.waiting = True
        decision.reason += "; agent asked to back off (temporary error)"
    elif decision.action in ("install", "update") and not decision.action_ids:
        failed = conditions.failures.get(decision.version.pk, 0)
        if failed >= conditions.max_failures:
            decision.waiting = True
            decision.reason += f"; failed {failed} times on this device, not offered again"
