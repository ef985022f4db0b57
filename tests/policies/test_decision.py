"""The policy decision as a pure function (apps/policies/decision.py), table by table, without
a database: each row is one situation of one component on one device and what is due."""

import pytest

from apps.policies.decision import (
    Action,
    Component,
    ComponentFacts,
    Conditions,
    Floor,
    Held,
    Rule,
    Version,
    decide,
    decide_unknown_unneeded,
)

TA = Component(pk=1, component_id="ta", manifest_component_id="ta-suit", name="hello-ta")
V1 = Version(11, 1, "1.0", 1, "released")
V2 = Version(12, 1, "2.0", 2, "released")
V3 = Version(13, 1, "3.0", 3, "released")
V2_BAD = Version(12, 1, "2.0", 2, "compromised")
V3_DRAFT = Version(13, 1, "3.0", 3, "draft")
REQUIRED = Rule(required=True, source='group "fleet" policy: required')
FORBIDDEN = Rule(forbidden_all=True, source='group "fleet" policy: forbidden')


def facts(held=None, released=(V2, V1), rule=Rule(), actions=(), requested=None, unneeded=False, floors=(),
          in_flight=False, component=TA):
    return ComponentFacts(
        key="ta", component=component, held=Held(held, held.sequence_number) if held else None,
        requested=requested, unneeded=unneeded, rule=rule, released=tuple(released), actions=tuple(actions),
        floors=tuple(floors), in_flight=in_flight,
    )


def summary(outcome):
    d = outcome.decision
    if d is None:
        return None
    return (d.action, d.version.version_label if d.version else None, d.waiting)


# --- Rule 1 to 3: removals ----------------------------------------------------------------------------


@pytest.mark.parametrize("situation, expected", [
    # held compromised version: removed, whatever the policy says
    (facts(held=V2_BAD, released=(V1,), rule=REQUIRED), ("remove", "2.0", False)),
    # held, whole component forbidden
    (facts(held=V1, rule=FORBIDDEN), ("remove", "1.0", False)),
    # held, that version forbidden: removed (the newer one follows later)
    (facts(held=V1, rule=Rule(forbidden_versions=frozenset({V1.pk}), source="p")), ("remove", "1.0", False)),
    # a queued removal of what it holds
    (facts(held=V1, actions=[Action(5, "remove", None)]), ("remove", "1.0", False)),
    # the agent no longer needs it
    (facts(held=V1, unneeded=True), ("remove", "1.0", False)),
    # ... but a required component is kept (and would be reinstalled anyway)
    (facts(held=V2, unneeded=True, rule=REQUIRED), ("none", "2.0", False)),
    # not held, agent says unneeded: unlinked as asked
    (facts(held=None, unneeded=True), ("remove", None, False)),
])
def test_removals(situation, expected):
    assert summary(decide(situation)) == expected


def test_a_held_compromised_version_without_a_tracked_removal_is_reported_for_tracking():
    outcome = decide(facts(held=V2_BAD, released=(V1,)))
    assert outcome.untracked_compromised == V2_BAD and outcome.decision.urgent
    tracked = decide(facts(held=V2_BAD, released=(V1,), actions=[Action(7, "remove", V2_BAD)]))
    assert tracked.untracked_compromised is None and tracked.decision.action_ids == [7]


def test_a_queued_removal_of_a_required_component_fails_with_the_reason():
    outcome = decide(facts(held=V2, rule=REQUIRED, actions=[Action(5, "remove", None)]))
    assert [(s.action_id, s.state) for s in outcome.settle] == [(5, "failed")]
    assert "device override" in outcome.settle[0].reason and outcome.decision.action == "none"


def test_a_queued_removal_of_something_not_held_succeeds_at_once():
    outcome = decide(facts(held=None, actions=[Action(5, "remove", None)]))
    assert [(s.action_id, s.state) for s in outcome.settle] == [(5, "succeeded")]


# --- Rule 4: install or update -------------------------------------------------------------------------


@pytest.mark.parametrize("situation, expected", [
    # required, not held: the latest released
    (facts(rule=REQUIRED), ("install", "2.0", False)),
    # required, holds an older one: update
    (facts(held=V1, rule=REQUIRED), ("update", "2.0", False)),
    # required and up to date
    (facts(held=V2, rule=REQUIRED), ("none", "2.0", False)),
    # pinned beats latest; never a rollback from a newer held version
    (facts(rule=Rule(required=True, pinned=V1, source="pin")), ("install", "1.0", False)),
    (facts(held=V2, rule=Rule(required=True, pinned=V1, source="pin")), ("none", "1.0", False)),
    # a pinned version that is not released is not installed
    (facts(rule=Rule(required=True, pinned=V3_DRAFT, source="pin")), ("none", None, False)),
    # forbidden component: nothing installed
    (facts(rule=FORBIDDEN, requested={"min_sequence_number": None}), ("none", None, False)),
    # requested by the agent: newest allowed at least the requested sequence number
    (facts(requested={"min_sequence_number": None}), ("install", "2.0", False)),
    (facts(requested={"min_sequence_number": 3}), ("none", None, False)),
    # held, no policy: newer released version offered
    (facts(held=V1), ("update", "2.0", False)),
    # a queued install naming a version
    (facts(actions=[Action(9, "install", V1)]), ("install", "1.0", False)),
    # not in the catalogue: left alone, or nothing at all when not held
    (facts(held=V1, component=None, released=()), ("none", None, False)),
    (facts(held=None, component=None, released=()), None),
    # nothing concerns it
    (facts(held=None), None),
])
def test_install_or_update(situation, expected):
    assert summary(decide(situation)) == expected


# --- Compromise floors: no silent downgrade on former holders --------------------------------------------


@pytest.mark.parametrize("floor, released, expected", [
    # remove only: a former holder of 2.0 is not given the older 1.0 by "latest released"
    (Floor(sequence_number=2, replacement_pk=None), (V1,), ("none", None, False)),
    # ...but a newer release reaches it
    (Floor(sequence_number=2, replacement_pk=None), (V3, V1), ("install", "3.0", False)),
    # the replacement the security officer named is allowed even though older
    (Floor(sequence_number=2, replacement_pk=V1.pk), (V1,), ("install", "1.0", False)),
])
def test_former_holders_of_a_compromised_version_follow_the_chosen_replacement(floor, released, expected):
    assert summary(decide(facts(rule=REQUIRED, released=released, floors=[floor]))) == expected


def test_devices_that_never_held_the_compromised_version_still_fall_back_to_the_newest_allowed():
    assert summary(decide(facts(rule=REQUIRED, released=(V1,)))) == ("install", "1.0", False)


# --- Rule 5: hold back ------------------------------------------------------------------------------------


@pytest.mark.parametrize("situation, conditions, expected", [
    # an Update about it is in flight (concurrent session): wait
    (facts(rule=REQUIRED, in_flight=True), Conditions(), ("install", "2.0", True)),
    # back-off after ERR_TEMPORARY_ERROR holds installs...
    (facts(rule=REQUIRED), Conditions(backoff=True), ("install", "2.0", True)),
    # ...and removals asked by policy or people...
    (facts(held=V1, rule=FORBIDDEN), Conditions(backoff=True), ("remove", "1.0", True)),
    # ...but never the removal of a compromised version
    (facts(held=V2_BAD, released=(V1,)), Conditions(backoff=True), ("remove", "2.0", False)),
    # a version that failed too often is not offered again...
    (facts(rule=REQUIRED), Conditions(failures={V2.pk: 3}, max_failures=3), ("install", "2.0", True)),
    # ...unless a queued action carries it (it counts its own attempts)
    (facts(actions=[Action(9, "install", V2)]), Conditions(failures={V2.pk: 3}, max_failures=3),
     ("install", "2.0", False)),
])
def test_hold_back(situation, conditions, expected):
    assert summary(decide(situation, conditions)) == expected


def test_queued_installs_already_satisfied_settle_without_a_delivery():
    outcome = decide(facts(held=V2, actions=[Action(9, "install", V1), Action(10, "update", None)]))
    assert sorted((s.action_id, s.state) for s in outcome.settle) == [(9, "succeeded"), (10, "succeeded")]
    assert outcome.decision.action == "none"


def test_unknown_unneeded_manifest_is_unlinked_unless_held_back():
    assert decide_unknown_unneeded("x", in_flight=False, backoff=False).due
    assert not decide_unknown_unneeded("x", in_flight=False, backoff=True).due
