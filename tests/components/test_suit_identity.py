"""SUIT vendor / class ids per Trusted Component (issue 12 item 6): defaults per SUIT manifest
8.4.8.3, editable by operators, carried with their conditions by every manifest the TAM builds,
valid SUIT CDDL, and checked by the product agent."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from apps.agent.agent import TeepAgent
from apps.agent.state import DeviceIdentity
from apps.audit.models import AuditEvent
from apps.components import services
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import cose, messages
from apps.teep.wire.suit import envelope_to_bytes, parse_envelope, parse_report
from tests.components.conftest import EXAMPLE_PAYLOAD
from tests.components.factories import EXAMPLE_COMPONENT_ID
from tests.wire.cddl_validation import cddl_errors

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
VENDOR_DOMAIN = "tam.example.com"
DEFAULT_VENDOR = uuid.uuid5(uuid.NAMESPACE_DNS, VENDOR_DOMAIN)


@pytest.fixture(autouse=True)
def vendor_domain(settings):
    settings.TAM_VENDOR_DOMAIN = VENDOR_DOMAIN


@pytest.fixture(scope="module")
def suit_cddl(specs_dir):
    from cddl_verifier import Validator

    return Validator((specs_dir / "cddl/suit-manifest-complete.cddl").read_text())


def create(operator, **ids):
    return services.create_component(
        name="SecureFS TA", component_id=EXAMPLE_COMPONENT_ID, actor=operator, **ids
    )


def build(component, operator, sequence_number=1, delivery="integrated"):
    """A version the TAM builds; integrated, so the agent needs no HTTP to install it."""
    return services.upload_binary(
        component=component,
        binary_file=ContentFile(EXAMPLE_PAYLOAD, name="secure-fs.ta"),
        version_label=str(sequence_number),
        sequence_number=sequence_number,
        delivery=delivery,
        actor=operator,
        release=True,
    )


# --- defaults and edits ------------------------------------------------------------------------


def test_new_component_gets_the_recommended_uuid5_ids(operator):
    component = create(operator)
    assert component.suit_vendor_id == DEFAULT_VENDOR  # UUID5(DNS, vendor domain)
    assert component.suit_class_id == uuid.uuid5(DEFAULT_VENDOR, "SecureFS TA")
    after = AuditEvent.objects.get(action="component.create").detail["after"]
    assert after["suit_vendor_id"] == str(DEFAULT_VENDOR)


def test_given_ids_are_kept(operator):
    vendor, klass = uuid.uuid4(), uuid.uuid4()
    component = create(operator, suit_vendor_id=vendor, suit_class_id=klass)
    assert (component.suit_vendor_id, component.suit_class_id) == (vendor, klass)
    only_vendor = services.create_component(
        name="other", component_id=[b"other"], suit_vendor_id=vendor, actor=operator
    )
    assert only_vendor.suit_class_id == uuid.uuid5(vendor, "other")


def test_operator_edits_ids_and_the_audit_row_says_so(operator):
    component = create(operator)
    new_class = uuid.uuid4()
    services.update_component(
        component, name=component.name, vendor="", description="", signers=[],
        suit_class_id=new_class, actor=operator,
    )
    component.refresh_from_db()
    assert (component.suit_vendor_id, component.suit_class_id) == (DEFAULT_VENDOR, new_class)
    event = AuditEvent.objects.get(action="component.update")
    before, after = event.detail["before"], event.detail["after"]
    assert before["suit_class_id"] != after["suit_class_id"] == str(new_class)

    # Renaming keeps the ids (they are stored, not recomputed); None resets to the default.
    services.update_component(
        component, name="renamed", vendor="", description="", signers=[], actor=operator
    )
    component.refresh_from_db()
    assert component.suit_class_id == new_class
    services.update_component(
        component, name="renamed", vendor="", description="", signers=[],
        suit_class_id=None, actor=operator,
    )
    component.refresh_from_db()
    assert component.suit_class_id == uuid.uuid5(DEFAULT_VENDOR, "renamed")


def test_admin_add_form_blank_ids_get_defaults_typed_ids_are_stored(client, operator):
    client.force_login(operator)
    typed = uuid.uuid4()
    response = client.post(
        "/admin/components/trustedcomponent/add/",
        {
            "name": "admin-made",
            "vendor": "",
            "component_id_text": "['TEEP-Device', 'admin-made']",
            "manifest_component_id_text": "",
            "suit_vendor_id": "",
            "suit_class_id": str(typed),
            "description": "",
            "versions-TOTAL_FORMS": "0",  # the read-only version inline's management form
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    from apps.components.models import TrustedComponent

    component = TrustedComponent.objects.get(name="admin-made")
    assert (component.suit_vendor_id, component.suit_class_id) == (DEFAULT_VENDOR, typed)


def test_api_shows_the_ids(client, operator):
    from apps.api.serializers import TrustedComponentSerializer

    component = create(operator)
    data = TrustedComponentSerializer(component).data
    assert data["suit_vendor_id"] == str(DEFAULT_VENDOR)
    assert data["suit_class_id"] == str(component.suit_class_id)


# --- the manifests the TAM builds -------------------------------------------------------------


def test_built_manifest_carries_the_ids_and_their_conditions(operator, suit_cddl):
    component = create(operator)
    version = build(component, operator, delivery="uri")
    data = bytes(version.envelope)

    envelope = parse_envelope(data)
    shared = envelope.manifest.common.shared_sequence
    assert [command.name for command in shared] == [
        "directive-override-parameters",
        "condition-vendor-identifier",
        "condition-class-identifier",
    ]
    parameters = shared[0].argument
    assert parameters["vendor-identifier"] == component.suit_vendor_id.bytes  # RFC 4122 bytes
    assert parameters["class-identifier"] == component.suit_class_id.bytes
    assert [command.argument for command in shared[1:]] == [15, 15]  # report everything
    # Valid SUIT (the complete SUIT CDDL), round-trips byte for byte, and fits an Update.
    result = suit_cddl.validate(data, root_type="SUIT_Envelope")
    assert result.valid, [d.message for d in result.diagnostics]
    assert envelope_to_bytes(envelope) == data
    update = messages.Update(token=bytes(16), manifest_list=(data,))
    assert cddl_errors(messages.encode(update)) == ()


def test_personalization_manifests_carry_the_ids_too():
    from apps.teep.wire.keys import TeepKey
    from apps.teep.wire.suit.personalization import build_personalization_envelope

    vendor, klass = uuid.uuid4().bytes, uuid.uuid4().bytes
    data = build_personalization_envelope(
        component_id=[b"config.json"],
        manifest_component_id=[b"config.suit"],
        sequence_number=1,
        plaintext=b"{}",
        recipient_key=TeepKey.generate("p256").public(),
        signing_key=TeepKey.generate("p256"),
        vendor_id=vendor,
        class_id=klass,
    )
    shared = parse_envelope(data).manifest.common.shared_sequence
    assert [c.name for c in shared] == [
        "directive-set-component-index",
        "directive-override-parameters",
        "condition-vendor-identifier",
        "condition-class-identifier",
    ]
    assert dict(shared[1].argument) == {"vendor-identifier": vendor, "class-identifier": klass}


# --- the product agent checks them --------------------------------------------------------------


def update_for(version) -> bytes:
    key = tam_keys().signing_key_for(-9)
    update = messages.Update(token=bytes(range(16)), manifest_list=(bytes(version.envelope),))
    return cose.sign1(messages.encode(update), key, -9)


def agent_with_identity(tmp_path, identity) -> TeepAgent:
    agent = TeepAgent(tmp_path / "agent", identity=identity)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    return agent


def test_agent_with_the_components_ids_installs_it(tmp_path, operator):
    component = create(operator)
    version = build(component, operator)
    agent = agent_with_identity(
        tmp_path,
        DeviceIdentity(
            vendor_ids=(component.suit_vendor_id.bytes,), class_ids=(component.suit_class_id.bytes,)
        ),
    )
    reply = agent.handle_message(update_for(version))
    assert reply.sent == "success" and reply.installed


def test_agent_of_another_class_refuses_it(tmp_path, operator):
    component = create(operator)
    version = build(component, operator)
    other = uuid.uuid4().bytes
    agent = agent_with_identity(
        tmp_path,
        DeviceIdentity(vendor_ids=(component.suit_vendor_id.bytes,), class_ids=(other,)),
    )
    reply = agent.handle_message(update_for(version))
    assert reply.sent == "error" and agent.installed_components() == []
    error = messages.decode(cose.verify(reply.body, agent.key))
    failure = parse_report(error.suit_reports[0]).failure
    assert failure.reason_name == "condition-failed"
    assert dict(failure.record.properties) == {"class-identifier": other}


def test_versions_built_before_keep_their_bytes(operator):
    component = create(operator)
    version = build(component, operator)
    before = bytes(version.envelope)
    services.update_component(
        component, name=component.name, vendor="", description="", signers=[],
        suit_vendor_id=uuid.uuid4(), actor=operator,
    )
    version.refresh_from_db()
    assert bytes(version.envelope) == before


@pytest.mark.parametrize(
    "configured, expected",
    [("", "tam.vendor.example"), ("vendor.example.org", "vendor.example.org")],
)
def test_vendor_domain_defaults_to_the_public_base_urls_host(configured, expected, tmp_path):
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATA_DIR": str(tmp_path),
        "TAM_PUBLIC_BASE_URL": "https://tam.vendor.example:8443/portal",
        "TAM_VENDOR_DOMAIN": configured,
    }
    done = subprocess.run(
        [sys.executable, "-c", "import tam_portal.settings as s; print(s.TAM_VENDOR_DOMAIN)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
