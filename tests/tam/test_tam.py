"""The TAM state machine (apps/teep/tam.py), without HTTP: TEEP 7.1 read as a specification."""

import hashlib
from unittest import mock
from datetime import timedelta

import cbor2
import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion
from apps.devices.models import DeliveryItem, Device, InstalledComponent
from apps.tam import engine
from apps.teep import tokens
from apps.teep.models import TeepToken
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import cose, messages
from apps.teep.wire.component_ids import component_id_key
from apps.teep.wire.numbering import CURRENT, PRE_26
from apps.teep.wire.suit import build_report, make_failure, parse_envelope

from .conftest import TA_COMPONENT_ID, release_new_version

pytestmark = pytest.mark.django_db


def connect(agent):
    """Empty POST -> QueryRequest; returns the decoded QueryRequest."""
    answer = engine.process_connect(numbering=agent.numbering, source_ip="192.0.2.1")
    assert answer.outcome == "query-request"
    return agent.read(answer.body)


def claims_for(version) -> dict:
    return {0: TA_COMPONENT_ID, 3: cbor2.dumps([-16, bytes.fromhex(version.binary_sha256)])}


def send(agent, message):
    return engine.process_teep_message(agent.sign(message), numbering=agent.numbering, source_ip="192.0.2.1")


def install(agent, version):
    """One whole RequestPolicyCheck that asks for the TA and reports success."""
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    update = agent.read(answer.body)
    assert update.manifest_list == (bytes(version.envelope),)
    done = send(agent, messages.Success(token=update.token))
    assert done.body is None and done.outcome == "nothing-due"
    return update


# --- QueryRequest -----------------------------------------------------------------------------


def test_first_query_request_is_cose_sign_verifiable_with_either_tam_key(db):
    answer = engine.process_connect(numbering=CURRENT)
    signed = cose.parse(answer.body)
    assert signed.structure == "COSE_Sign" and signed.tagged
    assert sorted(s.alg for s in signed.signatures) == [-19, -9]
    keys = tam_keys()
    for alg in (-9, -19):
        payload = cose.verify(answer.body, keys.signing_key_for(alg).public())
        request = messages.decode(payload)
    assert request.data_item_requested == messages.TRUSTED_COMPONENTS | messages.SUIT_REPORTS
    assert len(request.token) == 40 and request.challenge is None
    assert set(request.supported_teep_cipher_suites) == {((18, -9),), ((18, -19),)}
    # Minted (apps/teep/tokens.py): nothing stored for an empty POST; the token names no device.
    assert not TeepToken.objects.exists()
    token = tokens.open_token(request.token)
    assert token.kind == "query-request" and token.device_id is None
    assert token.expires_at > timezone.now() + timedelta(hours=1)


def test_a_token_the_tam_did_not_mint_is_refused(make_agent, trusted_app):
    agent = make_agent()
    request = connect(agent)
    forged = bytearray(request.token)
    forged[0] ^= 1  # the random part changes: the MAC no longer matches
    answer = send(agent, messages.QueryResponse(token=bytes(forged), tc_list=()))
    assert answer.dropped and "unknown" in answer.reason
    assert send(agent, messages.QueryResponse(token=request.token, tc_list=())).outcome == "nothing-due"


def test_a_token_minted_under_another_secret_key_is_refused(make_agent, trusted_app, settings):
    agent = make_agent()
    request = connect(agent)
    settings.SECRET_KEY = "another-" + settings.SECRET_KEY
    assert send(agent, messages.QueryResponse(token=request.token, tc_list=())).dropped


def test_every_query_request_has_a_fresh_token(db):
    tokens = {messages.decode(cose.parse(engine.process_connect(numbering=CURRENT).body).payload).token for _ in range(5)}
    assert len(tokens) == 5


# --- QueryResponse -> Update -> Success ------------------------------------------------------


def test_requested_component_is_installed_and_recorded(make_agent, trusted_app):
    agent = make_agent("ed25519")
    update = install(agent, trusted_app)
    # Updates are signed with the agent's own suite (TEEP 8.1): Ed25519.
    assert update.unneeded_manifest_list is None
    held = InstalledComponent.objects.get(device=agent.device)
    assert held.version == trusted_app and held.sequence_number == 1
    assert held.component_key == component_id_key(TA_COMPONENT_ID)
    delivery = DeliveryItem.objects.get(device=agent.device)
    assert delivery.state == DeliveryItem.State.SUCCEEDED and delivery.kind == "install"
    device = Device.objects.get(pk=agent.device.pk)
    assert device.state == Device.State.ACTIVE and device.signing_alg == -19
    assert device.first_contact_at is not None


def test_update_is_signed_with_the_algorithm_the_agent_used(make_agent, trusted_app):
    agent = make_agent("p256")
    agent.alg = -7  # an agent from an older draft signs ES256 (DESIGN.md)
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    assert cose.parse(answer.body).signatures[0].alg == -7
    assert cose.parse(answer.body).structure == "COSE_Sign1"


def test_nothing_due_answers_nothing(make_agent, trusted_app):
    agent = make_agent()
    install(agent, trusted_app)
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(token=request.token, tc_list=(claims_for(trusted_app),)))
    assert answer.body is None and answer.outcome == "nothing-due"


def test_newer_released_version_is_offered_as_update(make_agent, trusted_app):
    agent = make_agent()
    install(agent, trusted_app)
    newer = release_new_version(trusted_app.component, 2)
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(token=request.token, tc_list=(claims_for(trusted_app),)))
    update = agent.read(answer.body)
    assert [parse_envelope(e).sequence_number for e in update.manifest_list] == [2]
    send(agent, messages.Success(token=update.token))
    assert InstalledComponent.objects.get(device=agent.device).version == newer


def test_compromised_version_is_removed_by_manifest_component_id(make_agent, trusted_app):
    agent = make_agent()
    install(agent, trusted_app)
    ComponentVersion.objects.filter(pk=trusted_app.pk).update(state=ComponentVersion.State.COMPROMISED)
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(token=request.token, tc_list=(claims_for(trusted_app),)))
    update = agent.read(answer.body)
    assert update.manifest_list is None
    assert update.unneeded_manifest_list == (tuple(TA_COMPONENT_ID[:-1] + [b"suit"]),)
    send(agent, messages.Success(token=update.token))
    assert not InstalledComponent.objects.filter(device=agent.device).exists()


def test_unneeded_manifest_reported_by_the_agent_is_unlinked(make_agent, trusted_app):
    agent = make_agent()
    install(agent, trusted_app)
    manifest_id = tuple(TA_COMPONENT_ID[:-1] + [b"suit"])
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(claims_for(trusted_app),), unneeded_manifest_list=(manifest_id,)
    ))
    update = agent.read(answer.body)
    assert update.unneeded_manifest_list == (manifest_id,)
    send(agent, messages.Success(token=update.token))
    assert not InstalledComponent.objects.filter(device=agent.device).exists()


def test_draft_25_numbering_end_to_end(make_agent, trusted_app):
    agent = make_agent(numbering=PRE_26)
    install(agent, trusted_app)
    assert Device.objects.get(pk=agent.device.pk).numbering == "draft-25"


# --- What gets dropped (DESIGN.md table), and changes nothing ------------------------------


def test_replayed_token_is_dropped(make_agent, trusted_app):
    agent = make_agent()
    request = connect(agent)
    response = messages.QueryResponse(token=request.token, tc_list=())
    assert send(agent, response).outcome == "nothing-due"
    replay = send(agent, response)
    assert replay.dropped and "already used" in replay.reason
    assert AuditEvent.objects.filter(outcome="dropped", reason__contains="already used").exists()


def test_expired_token_is_dropped(make_agent, trusted_app, settings):
    agent = make_agent()
    request = connect(agent)
    later = timezone.now() + timedelta(seconds=settings.TEEP_TOKEN_LIFETIME_SECONDS + 1)
    with mock.patch("apps.tam.engine.timezone.now", return_value=later):
        answer = send(agent, messages.QueryResponse(token=request.token, tc_list=()))
    assert answer.dropped and "expired" in answer.reason
    assert not TeepToken.objects.exists()  # refused without a row


def test_unknown_agent_key_gets_a_challenge_and_nothing_is_recorded(make_agent):
    from apps.teep.wire.keys import TeepKey

    agent = make_agent()
    agent.key = TeepKey.generate("p256")  # not the registered key
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(token=request.token, tc_list=()))
    # DESIGN.md bootstrap step 3: a QueryRequest with a challenge and the attestation bit.
    challenge_request = agent.read(answer.body)
    assert challenge_request.token is None and len(challenge_request.challenge) == 32
    assert challenge_request.data_item_requested & messages.ATTESTATION
    assert cose.parse(answer.body).structure == "COSE_Sign1"
    # The unauthenticated answer consumed nothing and created nothing.
    assert not TeepToken.objects.filter(value=request.token).exists()
    assert not Device.objects.filter(kid=agent.key.kid.hex()).exists()


def test_unknown_agent_key_success_is_dropped_and_audited(make_agent):
    from apps.teep.wire.keys import TeepKey

    agent = make_agent()
    agent.key = TeepKey.generate("p256")
    answer = send(agent, messages.Success(token=b"t" * 16))
    assert answer.dropped and "unknown agent key" in answer.reason
    event = AuditEvent.objects.filter(outcome="dropped").latest("id")
    assert event.device_kid == agent.key.kid.hex()


def test_tampered_signature_is_dropped_and_token_stays_usable(make_agent):
    agent = make_agent()
    request = connect(agent)
    signed = bytearray(agent.sign(messages.QueryResponse(token=request.token, tc_list=())))
    signed[-1] ^= 0x01
    answer = engine.process_teep_message(bytes(signed), numbering=CURRENT)
    assert answer.dropped and "signature" in answer.reason
    # 7.1: only a validly signed answer consumes the token.
    assert send(agent, messages.QueryResponse(token=request.token, tc_list=())).outcome == "nothing-due"


@pytest.mark.parametrize("garbage", [b"\x00", b"\xd2\x84\x40\xa0\xf6\x40", b"\xff" * 40])
def test_unparseable_message_is_dropped(garbage, db):
    answer = engine.process_teep_message(garbage, numbering=CURRENT)
    assert answer.dropped and answer.body is None


def test_wrong_numbering_at_the_endpoint_is_dropped(make_agent):
    agent = make_agent(numbering=PRE_26)
    request = connect(agent)
    signed = agent.sign(messages.Success(token=request.token))
    answer = engine.process_teep_message(signed, numbering=CURRENT)
    assert answer.dropped and "invalid TEEP message" in answer.reason


def test_missing_tc_list_gets_update_with_err_code_and_changes_nothing(make_agent, trusted_app):
    agent = make_agent()
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(token=request.token))
    update = agent.read(answer.body)
    assert update.err_code == CURRENT.err_code("ERR_PERMANENT_ERROR")
    assert "tc-list is missing" in update.err_msg
    assert update.manifest_list is None and update.token
    device = Device.objects.get(pk=agent.device.pk)
    assert device.last_contact_at is None and device.state == Device.State.REGISTERED


def test_suit_report_with_wrong_nonce_drops_the_success(make_agent, trusted_app):
    agent = make_agent()
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    update = agent.read(answer.body)
    envelope = parse_envelope(update.manifest_list[0])
    report = build_report(manifest_uri="", manifest_digest=envelope.digest, nonce=b"\x00" * 32)
    dropped = send(agent, messages.Success(token=update.token, suit_reports=(report,)))
    assert dropped.dropped and "nonce" in dropped.reason
    assert not InstalledComponent.objects.filter(device=agent.device).exists()
    # The dropped Success consumed the token (TEEP 4.2, 7.1): a second one is refused...
    report = build_report(manifest_uri="", manifest_digest=envelope.digest, nonce=update.token)
    replay = send(agent, messages.Success(token=update.token, suit_reports=(report,)))
    assert replay.dropped and "already used" in replay.reason
    assert not InstalledComponent.objects.filter(device=agent.device).exists()
    # ...and the device's next report settles the Update.
    request = connect(agent)
    claims = {0: TA_COMPONENT_ID, 3: cbor2.dumps([-16, bytes.fromhex(trusted_app.binary_sha256)])}
    assert send(agent, messages.QueryResponse(token=request.token, tc_list=(claims,))).outcome == "nothing-due"
    assert InstalledComponent.objects.get(device=agent.device).version == trusted_app
    assert DeliveryItem.objects.get(device=agent.device).state == DeliveryItem.State.SUCCEEDED


def test_failure_half_way_changes_nothing(make_agent, trusted_app, monkeypatch):
    agent = make_agent()
    request = connect(agent)

    def explode(*args, **kwargs):
        raise RuntimeError("storage broke")

    monkeypatch.setattr(engine.device_services, "compute_due", explode)
    with pytest.raises(RuntimeError):
        send(agent, messages.QueryResponse(token=request.token, tc_list=(claims_for(trusted_app),)))
    assert not InstalledComponent.objects.filter(device=agent.device).exists()
    assert not TeepToken.objects.filter(value=request.token).exists()  # not consumed
    assert Device.objects.get(pk=agent.device.pk).last_contact_at is None


# --- Error handling (TEEP 4.6, 7.1.2): bookkeeping, never destructive ------------------------


def failing_install(agent, version, err_name="ERR_MANIFEST_PROCESSING_FAILED", with_report=True):
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    update = agent.read(answer.body)
    reports = None
    if with_report:
        envelope = parse_envelope(update.manifest_list[0])
        reports = (build_report(
            manifest_uri="", manifest_digest=envelope.digest, nonce=update.token,
            failure=make_failure(reason="condition-failed", section="install", offset=6, code=3),
        ),)
    error = messages.Error(token=update.token, err_code=CURRENT.err_code(err_name), err_msg="no", suit_reports=reports)
    return send(agent, error)


def test_manifest_processing_failure_is_recorded_with_the_report_reason(make_agent, trusted_app):
    agent = make_agent()
    answer = failing_install(agent, trusted_app)
    assert answer.body is None
    delivery = DeliveryItem.objects.get(device=agent.device)
    assert delivery.state == DeliveryItem.State.FAILED and not delivery.retryable
    assert "condition-failed" in delivery.reason
    assert not InstalledComponent.objects.filter(device=agent.device).exists()
    assert Device.objects.get(pk=agent.device.pk).last_error_name == "ERR_MANIFEST_PROCESSING_FAILED"


def test_failed_version_is_retried_only_within_the_limit(make_agent, trusted_app, settings):
    settings.TEEP_MAX_DELIVERY_FAILURES = 2
    agent = make_agent()
    failing_install(agent, trusted_app)
    failing_install(agent, trusted_app)
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    assert answer.outcome == "nothing-due"


def test_temporary_error_backs_off(make_agent, trusted_app):
    agent = make_agent()
    failing_install(agent, trusted_app, "ERR_TEMPORARY_ERROR", with_report=False)
    device = Device.objects.get(pk=agent.device.pk)
    assert device.backoff_until > timezone.now()
    assert DeliveryItem.objects.get(device=agent.device).retryable
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    assert answer.outcome == "nothing-due"
    Device.objects.filter(pk=device.pk).update(backoff_until=timezone.now() - timedelta(seconds=1))
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    assert answer.outcome == "update"


def test_unsupported_cipher_suites_error_is_recorded(make_agent):
    agent = make_agent()
    request = connect(agent)
    answer = send(agent, messages.Error(
        token=request.token, err_code=CURRENT.err_code("ERR_UNSUPPORTED_CIPHER_SUITES"),
        supported_teep_cipher_suites=(((18, -35),),),
    ))
    assert answer.body is None
    device = Device.objects.get(pk=agent.device.pk)
    assert device.last_error_name == "ERR_UNSUPPORTED_CIPHER_SUITES"
    assert device.agent_cipher_suites == [[[18, -35]]]


def test_an_update_token_names_its_device_and_no_other_device_may_use_it(make_agent, trusted_app):
    agent, other = make_agent(), make_agent(name="other")
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    update = agent.read(answer.body)
    assert tokens.open_token(update.token).device_id == agent.device.pk
    stolen = send(other, messages.Success(token=update.token))
    assert stolen.dropped and "unknown, expired or already used" in stolen.reason
    assert send(agent, messages.Success(token=update.token)).outcome == "nothing-due"


def test_every_exchange_is_audited_with_sizes_and_duration(make_agent, trusted_app):
    agent = make_agent()
    install(agent, trusted_app)
    events = list(AuditEvent.objects.exchanges().order_by("id"))
    assert [e.detail["in"] for e in events] == ["empty", "query-response", "success"]
    assert [e.detail["out"] for e in events] == ["query-request", "update", None]
    assert all(e.detail["bytes_in"] >= 0 and e.detail["duration_ms"] >= 0 for e in events)
    assert events[1].device_kid == agent.device.kid
    # Tokens are referred to by a prefix, never in full.
    assert all(len(e.detail.get("token", "")) <= 8 for e in events)
    assert hashlib.sha256(b"x").hexdigest()  # keep import used


def test_unsupported_cipher_suites_retries_with_a_legacy_suite_the_agent_lists(make_agent):
    agent = make_agent()
    request = connect(agent)
    assert request.versions == (0,)
    answer = send(agent, messages.Error(
        token=request.token, err_code=CURRENT.err_code("ERR_UNSUPPORTED_CIPHER_SUITES"),
        supported_teep_cipher_suites=(((18, -7),),),
    ))
    retry = cose.parse(answer.body)
    assert retry.structure == "COSE_Sign1" and retry.signatures[0].alg == -7
    offered = agent.read(answer.body)
    assert offered.supported_teep_cipher_suites == (((18, -7),),)
    assert tokens.open_token(offered.token).kind == "query-request"
    # ... and the agent's answer to the retry is accepted.
    assert send(agent, messages.QueryResponse(token=offered.token, tc_list=())).outcome == "nothing-due"


def test_attestation_required_is_answered_only_when_the_tam_has_a_payload(make_agent, settings, tmp_path):
    agent = make_agent()
    request = connect(agent)
    error = messages.Error(token=request.token, err_code=CURRENT.err_code("ERR_ATTESTATION_REQUIRED"))
    assert send(agent, error).body is None
    (tmp_path / "tam-ar.cbor").write_bytes(b"\xa1\x0a\x48" + b"n" * 8)
    settings.TAM_ATTESTATION_PAYLOAD_FILE = str(tmp_path / "tam-ar.cbor")
    request = connect(agent)
    answer = send(agent, messages.Error(token=request.token, err_code=CURRENT.err_code("ERR_ATTESTATION_REQUIRED")))
    offered = agent.read(answer.body)
    assert offered.attestation_payload == (tmp_path / "tam-ar.cbor").read_bytes()


def test_suit_report_encrypted_to_the_tam_is_decrypted_before_use(make_agent, trusted_app):
    # TEEP 8.2: an agent SHOULD encrypt its SUIT reports to the TAM (ES-DH + AES-KW).
    from apps.devices.models import SuitReport
    from apps.teep.wire.keys import TeepKey

    agent = make_agent()
    request = connect(agent)
    update = agent.read(send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    )).body)
    envelope = parse_envelope(update.manifest_list[0])
    report = build_report(manifest_digest=envelope.digest, nonce=update.token,
                          signing_key=TeepKey.generate("p256"),
                          encrypt_to=tam_keys().signing_key_for(-9).public())
    assert send(agent, messages.Success(token=update.token, suit_reports=(report,))).outcome == "nothing-due"
    stored = SuitReport.objects.get(device=agent.device)
    assert stored.success is True and stored.manifest_digest == envelope.digest.value.hex()


def test_repeated_boot_time_reports_are_stored_once(make_agent, trusted_app):
    from apps.devices.models import SuitReport

    agent = make_agent()
    install(agent, trusted_app)
    envelope = parse_envelope(bytes(trusted_app.envelope))
    for _ in range(3):
        request = connect(agent)
        report = build_report(manifest_digest=envelope.digest, nonce=request.token)
        send(agent, messages.QueryResponse(token=request.token, tc_list=(claims_for(trusted_app),),
                                           suit_reports=(report,)))
    assert SuitReport.objects.filter(device=agent.device, message_type="query-response").count() == 1


def test_a_steady_state_check_does_not_rewrite_what_the_device_holds(make_agent, trusted_app):
    agent = make_agent()
    install(agent, trusted_app)
    before = InstalledComponent.objects.get(device=agent.device).updated_at
    request = connect(agent)
    assert send(agent, messages.QueryResponse(token=request.token, tc_list=(claims_for(trusted_app),))).body is None
    held = InstalledComponent.objects.get(device=agent.device)
    assert held.updated_at == before and held.version == trusted_app
