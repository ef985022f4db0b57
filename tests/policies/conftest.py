"""Drive the real TAM state machine with the simulated agent of tests/teep."""

import cbor2
import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile

from apps.components import services as catalogue
from apps.tam import engine
from apps.teep.wire import messages
from apps.teep.wire.suit import build_report, make_failure, parse_envelope
from tests.components.factories import PASSWORD, UserFactory
from tests.tam.conftest import TA_COMPONENT_ID, make_agent, release_new_version, trusted_app  # noqa: F401

OTHER_COMPONENT_ID = [b"TEEP-Device", b"SecureFS", b"other", b"ta"]


def claims_for(version, component_id=TA_COMPONENT_ID) -> dict:
    return {0: component_id, 3: cbor2.dumps([-16, bytes.fromhex(version.binary_sha256)])}


def contact(agent, held=(), requested=(), unneeded=()):
    """One RequestPolicyCheck: empty POST, then the QueryResponse. Returns the decoded Update
    or None (nothing due)."""
    answer = engine.process_connect(numbering=agent.numbering, source_ip="192.0.2.1")
    request = agent.read(answer.body)
    response = messages.QueryResponse(
        token=request.token,
        tc_list=tuple(claims_for(v, v.component.component_id_elements) for v in held),
        requested_tc_list=tuple(messages.RequestedTcInfo(component_id=tuple(c)) for c in requested) or None,
        unneeded_manifest_list=tuple(tuple(m) for m in unneeded) or None,
    )
    answer = send(agent, response)
    assert not answer.dropped, answer.reason
    return agent.read(answer.body) if answer.body else None


def send(agent, message):
    return engine.process_teep_message(agent.sign(message), numbering=agent.numbering, source_ip="192.0.2.1")


def succeed(agent, update):
    answer = send(agent, messages.Success(token=update.token))
    assert answer.outcome == "nothing-due", answer.reason


def fail(agent, update, name="ERR_MANIFEST_PROCESSING_FAILED", msg="boom", suit_reason=None):
    """Error for the Update; with suit_reason, a SUIT report saying why the manifest failed."""
    reports = None
    if suit_reason:
        envelope = parse_envelope(update.manifest_list[0])
        reports = (build_report(
            manifest_uri="", manifest_digest=envelope.digest, nonce=update.token,
            failure=make_failure(reason=suit_reason, section="install", offset=6, code=3),
        ),)
    answer = send(agent, messages.Error(token=update.token, err_code=agent.numbering.err_code(name), err_msg=msg,
                                        suit_reports=reports))
    assert not answer.dropped, answer.reason


@pytest.fixture
def other_app(db):
    component = catalogue.create_component(name="other-ta", component_id=OTHER_COMPONENT_ID, actor=None)
    return catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"other payload", name="other.ta"),
        version_label="1.0", sequence_number=1, actor=None, release=True,
    )


def user_in(role: str, username: str):
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def world(db):
    """alice views, bob operates, charlie is the security officer."""
    return {
        "viewer": user_in("viewer", "alice"),
        "operator": user_in("operator", "bob"),
        "security officer": user_in("security officer", "charlie"),
        "password": PASSWORD,
    }
