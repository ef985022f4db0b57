"""SUIT vendor / class id conditions (SUIT manifest 8.4.10.1) in the product agent: any id
matches by default; the state folder's identity.json narrows it; a mismatch is
condition-failed with a record pointing at the condition, carrying this device's id."""

import json
import uuid

import pytest

from apps.agent.agent import TeepAgent
from apps.agent.state import DeviceIdentity
from apps.teep.wire.suit import command_at, parse_envelope, parse_report

from .test_agent import err, install

VENDOR = uuid.uuid5(uuid.NAMESPACE_DNS, "tam.example.com").bytes
CLASS = uuid.uuid5(uuid.UUID(bytes=VENDOR), "hello-ta").bytes
OTHER = uuid.uuid4().bytes


def test_any_vendor_and_class_match_by_default(agent, tam):
    _, reply, success = install(agent, tam, vendor_id=VENDOR, class_id=CLASS)
    assert reply.sent == "success" and reply.installed


def test_identity_from_the_state_folder_is_checked(tmp_path, make_agent, tam):
    agent = make_agent()
    agent.set_identity(DeviceIdentity(vendor_ids=(OTHER, VENDOR), class_ids=(CLASS,)))
    document = json.loads((agent.state.root / "identity.json").read_text())
    assert document == {
        "vendor-ids": [str(uuid.UUID(bytes=OTHER)), str(uuid.UUID(bytes=VENDOR))],
        "class-ids": [str(uuid.UUID(bytes=CLASS))],
    }
    # A new agent on the same folder reads it back.
    again = TeepAgent(agent.state.root, numbering=tam.numbering)
    assert again.identity == agent.identity

    _, reply, _ = install(again, tam, vendor_id=VENDOR, class_id=CLASS)
    assert reply.sent == "success"


@pytest.mark.parametrize("which", ["vendor", "class"])
def test_mismatch_fails_condition_with_the_right_report_record(which, make_agent, tam):
    agent = make_agent()
    mine = {"vendor": (VENDOR,), "class": (CLASS,)}
    mine[which] = (OTHER,)
    agent.set_identity(DeviceIdentity(vendor_ids=mine["vendor"], class_ids=mine["class"]))
    envelope = tam.envelope(b"TA binary v1", vendor_id=VENDOR, class_id=CLASS)

    token = tam.token()
    reply = agent.handle_message(tam.update(token=token, manifests=[envelope]))

    error = tam.open(reply.body, agent.key)
    assert error.err_code == err(tam, "ERR_MANIFEST_PROCESSING_FAILED")
    assert agent.installed_components() == []
    assert reply.manifests[0].reason == "condition-failed"
    (report,) = error.suit_reports
    failure = parse_report(report, key=agent.report_key.public()).failure
    assert failure.reason_name == "condition-failed"
    record = failure.record
    assert (record.section, record.component_index) == (3, 0)  # the shared sequence, in common
    assert dict(record.properties) == {f"{which}-identifier": OTHER}  # this device's own id
    index, command = command_at(parse_envelope(envelope), record)
    assert command.name == f"condition-{which}-identifier"
    assert index == (1 if which == "vendor" else 2)


def test_envelope_without_identity_conditions_installs_on_a_configured_device(make_agent, tam):
    # Versions stored before the TAM added the conditions carry none: they keep installing.
    agent = make_agent()
    agent.set_identity(DeviceIdentity(vendor_ids=(OTHER,), class_ids=(OTHER,)))
    _, reply, _ = install(agent, tam)
    assert reply.sent == "success" and reply.installed


def test_identity_file_with_a_bad_uuid_is_a_clear_error(tmp_path):
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "identity.json").write_text('{"vendor-ids": ["not-a-uuid"]}')
    with pytest.raises(ValueError, match="identity.json: not a device identity"):
        TeepAgent(folder)
