"""Property of the reconciler: whatever the network does to the messages between one agent and
the TAM (lost, duplicated, delayed and delivered out of order) and whatever operators do
meanwhile (releases, compromises with or without a replacement, policy changes), one clean
check afterwards leaves the agent holding exactly what the TAM wants it to hold.

The product agent and the TAM state machine talk in-process (the "network" is this test);
payloads are integrated in their manifests, so nothing is fetched over HTTP.
"""

import itertools

import pytest
from django.core.files.base import ContentFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.agent.agent import TeepAgent
from apps.components import services as catalogue
from apps.devices.models import Device, InstalledComponent, Tag
from apps.devices.services import register_agent
from apps.policies import services as policies
from apps.policies.models import Policy
from apps.policies.resolution import explain_due
from apps.tam import engine
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.numbering import CURRENT
from tests.policies.factories import DeviceGroupFactory

pytestmark = pytest.mark.django_db

FAULTS = ("ok", "ok", "ok", "lose_request", "lose_answer", "duplicate_request", "duplicate_answer", "delay_request")
EXAMPLE = itertools.count(1)

check = st.tuples(st.just("check"), st.lists(st.sampled_from(FAULTS), min_size=4, max_size=4))
operation = st.one_of(
    check,
    st.tuples(st.just("release")),
    st.tuples(st.just("compromise"), st.integers(0, 5), st.integers(-1, 5)),
    st.tuples(st.just("policy"), st.booleans()),
    st.tuples(st.just("request")),
    st.tuples(st.just("deliver_delayed")),
)


class World:
    """One component, one agent, one group policy, and a network that misbehaves."""

    def __init__(self, tmp_path, capture):
        n = next(EXAMPLE)
        self.capture = capture
        self.component = catalogue.create_component(
            name=f"prop-ta-{n}", component_id=[b"prop", str(n).encode(), b"ta"], actor=None)
        self.versions = []
        self.release()
        self.agent = TeepAgent(tmp_path / f"agent-{n}")
        for key in tam_keys().public_keys:
            self.agent.add_tam_key(key)
        self.device = register_agent(public_key_bytes=self.agent.public_key_path.read_bytes(), name=f"p{n}",
                                     tags=[f"prop-{n}"])
        self.group = DeviceGroupFactory(name=f"prop-{n}")
        self.group.tags.add(Tag.objects.get(name=f"prop-{n}"))
        self.requested = False
        self.delayed = []  # messages to the TAM held back by the network

    # --- operators ---
    def release(self):
        sequence = len(self.versions) + 1
        self.versions.append(catalogue.upload_binary(
            component=self.component, binary_file=ContentFile(f"payload {sequence}".encode(), name="ta.bin"),
            version_label=f"1.{sequence}", sequence_number=sequence, delivery="integrated", actor=None,
            release=True,
        ))

    def compromise(self, index, replacement_index):
        released = [v for v in self._refresh() if v.state == "released"]
        if not released:
            return
        version = released[index % len(released)]
        others = [v for v in released if v.pk != version.pk]
        replacement = others[replacement_index % len(others)] if others and replacement_index >= 0 else None
        with self.capture(execute=True):
            policies.mark_compromised(version, actor=None, reason="property test", replacement=replacement)

    def policy(self, required):
        Policy.objects.filter(group=self.group).delete()
        if required:
            Policy.objects.create(group=self.group, component=self.component, effect="required")

    def request(self):
        self.requested = True
        self.agent.request_ta(self.component.component_id_elements)

    # --- the network ---
    def to_tam(self, body):
        if body:
            return engine.process_teep_message(body, numbering=CURRENT).body
        return engine.process_connect(numbering=CURRENT).body

    def session(self, faults):
        """One RequestPolicyCheck; each leg may misbehave (faults are used in order)."""
        faults = iter(faults)
        body = b""
        for _ in range(8):
            fault = next(faults, "ok")
            if fault == "lose_request":
                return
            if fault == "delay_request":
                self.delayed.append(body)
                return
            answer = self.to_tam(body)
            if fault == "duplicate_request":
                self.to_tam(body)
            if fault == "lose_answer" or answer is None:
                return
            reply = self.agent.handle_message(answer)
            if fault == "duplicate_answer":
                again = self.agent.handle_message(answer)
                if again.body:
                    self.delayed.append(again.body)
            if reply.body is None:
                return
            body = reply.body

    def deliver_delayed(self):
        if self.delayed:
            answer = self.to_tam(self.delayed.pop(0))
            if answer is not None:  # the agent's session is long over: the answer goes nowhere
                pass

    def _refresh(self):
        for version in self.versions:
            version.refresh_from_db()
        return self.versions


def holdings_of_agent(world):
    return {c.key: c.sequence_number for c in world.agent.installed_components()}


def holdings_recorded(world):
    return dict(InstalledComponent.objects.filter(device=world.device).values_list("component_key", "sequence_number"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(steps=st.lists(operation, max_size=10))
def test_after_one_clean_check_the_agent_holds_exactly_the_desired_state(
        steps, tmp_path, settings, django_capture_on_commit_callbacks):
    settings.TEEP_RATE_LIMIT_PER_DEVICE = "0/60"
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "0/60"
    world = World(tmp_path, django_capture_on_commit_callbacks)
    for step in steps:
        name, *args = step
        if name == "check":
            world.session(args[0])
        else:
            getattr(world, name)(*args)

    world.session(["ok"] * 8)  # one clean check

    device = Device.objects.get(pk=world.device.pk)
    # The TAM's records are the truth, and the TAM has nothing more to send.
    assert holdings_of_agent(world) == holdings_recorded(world), steps
    due = [d for d in explain_due(device) if d.due]
    assert due == [], (steps, [(d.action, d.reason) for d in due])
    # Never a compromised version left on the device.
    versions = {v.sequence_number: v for v in world._refresh()}
    held = list(holdings_of_agent(world).values())
    assert all(versions[s].state != "compromised" for s in held), steps
    # Independent oracle: when the newest release is sound and newer than any compromised
    # version, a device that must or asked to hold the component holds exactly that release.
    sound = [v for v in versions.values() if v.state == "released"]
    compromised = [v.sequence_number for v in versions.values() if v.state == "compromised"]
    newest = max(sound, key=lambda v: v.sequence_number) if sound else None
    wanted = Policy.objects.filter(group=world.group).exists() or world.requested
    if newest is not None and wanted and all(newest.sequence_number > c for c in compromised):
        assert held == [newest.sequence_number], steps
