"""A TEEP Agent with a simulated TEE, for testing the TAM and simulating fleets (no Django).

TEEP references (specs/draft-ietf-teep-protocol.md): 4.1.2 validation, 4.3 QueryResponse,
4.5 Success, 4.6 Error, 7.2 Agent behaviour, 8.1 cipher suites; otrp-over-http 5 for
request_policy_check(). The wire format is apps.teep.wire's; nothing here encodes CBOR,
COSE or SUIT by itself.

Decisions where the drafts leave room:

* A message that cannot be authenticated with a trusted TAM key (bad CBOR, not COSE, bad or
  missing signature) is dropped: no answer (4.1.2 "MUST be rejected"). Answering an
  unauthenticated sender with a signed Error would echo a token we cannot trust.
* An authenticated message that does not decode, or that a TAM does not send, gets an Error
  ERR_PERMANENT_ERROR (7.2: "if it is not valid then the Agent responds with an Error").
* An Update carrying err-code (4.4, 7.1.1: the TAM found a problem in our QueryResponse) is
  recorded in the result; the rest of the Update is processed as usual and answered with
  Success / Error (7.2), so the TAM's token is consumed and the session ends.
* unneeded-manifest-list naming something not installed is not an error (the unlink is
  idempotent; the TAM's view may be one exchange old).
* tc-list / ext-list are sent empty ([]) when nothing is installed / no extension is
  supported if the codec accepts an empty array; otherwise they are left out.
* With the suit-reports bit, the QueryResponse carries one success report per installed
  manifest, with the token as nonce (4.3).
* SUIT_Envelope_Tagged (107) in manifest-list is installed like an untagged envelope (DESIGN.md
  decision 11: AttesTAM and tamproto send it).
* The SUIT vendor / class ids this device matches come from the state folder's identity.json
  (apps.agent.state); without it every id matches.

Behaviour's legacy knobs make this agent send what agents in the field send; two of them
(label 5, a forced empty tc-list) write option labels the codec would not, by adding them to
the encoded payload (`_with_options`): the only CBOR this module touches itself.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.component_ids import component_id_from_text, component_id_key, component_id_text
from apps.teep.wire.errors import CoseError, SuitError, TeepDecodeError, WireError
from apps.teep.wire.keys import KeyKind, TeepKey, load_public_key
from apps.teep.wire.numbering import CURRENT, Numbering, numbering_by_name
from apps.teep.wire.suit import (
    Envelope,
    SuitDigest,
    SystemProperties,
    build_report,
    decrypt_with_key,
    parse_envelope,
    verify_envelope,
)
from apps.teep.wire.suit import constants as suit_constants

from . import transport
from .state import AgentState, ComponentId, InstalledComponent, PendingRequest
from .suit_processor import (
    SECTION_SEQUENCE_NUMBER,
    DeviceIdentity,
    ManifestFailure,
    process_envelope,
)

MAX_EXCHANGES = 20  # a RequestPolicyCheck that goes on longer than this is a TAM bug
ES256 = -7
# selected-teep-cipher-suite: an option label of drafts before -12 or so, removed since; the
# pre-26 numbering left 5 unassigned for it (apps.teep.wire.numbering).
LEGACY_SELECTED_CIPHER_SUITE = 5


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """Failure knobs for simulations; the defaults make a well-behaved agent.

    fail_install_of: component ids (text form or CBOR hex key) whose install fails after all
        checks passed (SUIT reason operation-failed), leaving nothing installed.
    temporary_error: answer every Update with ERR_TEMPORARY_ERROR instead of processing it.
    tamper_signature: flip a bit in the signature of every message sent.

    Agents in the field (what each emulates; DESIGN.md "Cipher suites and agents from older
    drafts"):
    omit_kid: no kid in the COSE header (as some older agents do).
    legacy_es256: sign with ES256 (-7) instead of ESP256 (-9), as agents from older drafts do
        (a P-256 key only).
    legacy_selected_cipher_suite_label: the QueryResponse carries option label 5,
        selected-teep-cipher-suite (removed from the draft; libteep still sends it), holding the
        suite this agent signs with, e.g. [[18, -7]]. Pre-26 numbering only: label 5 is
        selected-version in the current one.
    empty_tc_list: when trusted-components is requested and nothing is installed, send
        tc-list [] even if the codec's rules would leave the empty array out (the CDDL says
        `[+ ...]`; libteep sends []).
    verify_only_sign1_es256: like libteep, accept only TAM messages that are a COSE_Sign1 signed
        with ES256 (-7); anything else (the default first QueryRequest, a COSE_Sign with -9 and
        -19) is dropped without an answer (a P-256 key only).
    chunked_body: POST with Transfer-Encoding: chunked and no Content-Length.
    fixed_host: send this Host header whatever the TAM URI says ("example.com", as
        teep-device does).
    sign_reports_with_teep_key: sign SUIT reports with the TEEP message key instead of the
        separate report key (libcsuit linked with libteep does; TEEP 4.5 / 4.6 say they differ).
    """

    fail_install_of: frozenset[str] = frozenset()
    temporary_error: bool = False
    tamper_signature: bool = False
    omit_kid: bool = False
    legacy_es256: bool = False
    legacy_selected_cipher_suite_label: bool = False
    empty_tc_list: bool = False
    verify_only_sign1_es256: bool = False
    chunked_body: bool = False
    fixed_host: str | None = None
    sign_reports_with_teep_key: bool = False

    def fails_install(self, component_id: Sequence[bytes]) -> bool:
        keys = {component_id_key(component_id), component_id_text(component_id)}
        return bool(keys & set(self.fail_install_of))


@dataclass(frozen=True)
class AttestationRequest:
    """What an evidence provider gets for a QueryRequest with the attestation bit (4.2)."""

    challenge: bytes | None
    supported_freshness_mechanisms: tuple[int, ...]
    agent_key: TeepKey  # public; Evidence binds it (cnf) so the TAM can check the signer
    agent_kid: bytes


@dataclass(frozen=True)
class AttestationEvidence:
    """attestation-payload and its attestation-payload-format (None: the TEEP EAT profile)."""

    payload: bytes
    media_type: str | None = None


EvidenceProvider = Callable[[AttestationRequest], AttestationEvidence]


# --- results ---------------------------------------------------------------------------------


@dataclass
class ManifestOutcome:
    """One envelope of an Update's manifest-list."""

    components: list[str]  # text form
    sequence_number: int | None
    success: bool
    reason: str = ""  # SUIT report reason name on failure
    message: str = ""


@dataclass
class Reply:
    """What ProcessTeepMessage gave back for one incoming message."""

    received: str  # message type name, or "unparsed"
    body: bytes | None  # the signed answer, None when the message was dropped
    sent: str | None = None  # message type of the answer
    dropped: str = ""  # why nothing was sent
    installed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    manifests: list[ManifestOutcome] = field(default_factory=list)
    tam_error: dict | None = None  # err-code / err-msg an Update carried


@dataclass
class Exchange:
    """One HTTP round trip of a RequestPolicyCheck."""

    sent: str  # "empty" or the message type posted
    http_status: int | None
    received: str | None  # message type in the answer, None for 204 / an error
    latency: float  # seconds
    bytes_sent: int
    bytes_received: int
    note: str = ""


@dataclass
class PolicyCheckResult:
    tam_uri: str
    numbering: str
    exchanges: list[Exchange] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    tam_errors: list[dict] = field(default_factory=list)
    error: str | None = None  # why the check did not end with a 204 (or an empty 200)
    http_status: int | None = None  # of the failing answer
    retry_after: int | None = None  # seconds, from a 429 / 503

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def http_statuses(self) -> list[int]:
        return [e.http_status for e in self.exchanges if e.http_status is not None]

    @property
    def messages(self) -> list[tuple[str, str | None]]:
        """(sent, received) message types, in order."""
        return [(e.sent, e.received) for e in self.exchanges]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ok=self.ok, http_statuses=self.http_statuses)
        return data


class PolicyCheckError(Exception):
    """Raised by PolicyCheckResult users who want an exception (see raise_for_error)."""

    def __init__(self, result: PolicyCheckResult):
        super().__init__(result.error)
        self.result = result
        self.retry_after = result.retry_after
        self.http_status = result.http_status


def raise_for_error(result: PolicyCheckResult) -> PolicyCheckResult:
    if not result.ok:
        raise PolicyCheckError(result)
    return result


class _Rejected(Exception):
    """The incoming message is dropped without an answer."""


# --- the agent -------------------------------------------------------------------------------


class TeepAgent:
    """TEEP Agent over a state folder (see apps.agent.state for its layout).

    numbering: a Numbering or its name ("draft-26", "draft-25"); it must match the TAM URI.
    key_type: "p256" (default) or "ed25519", used when the key is first generated.
    evidence_provider: answers QueryRequests with the attestation bit; without one such a
        QueryRequest gets ERR_PERMANENT_ERROR ("attestation not supported by this agent").
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        numbering: Numbering | str = CURRENT,
        key_type: KeyKind = "p256",
        behaviour: Behaviour | None = None,
        evidence_provider: EvidenceProvider | None = None,
        identity: DeviceIdentity | None = None,
        http_timeout: float = transport.DEFAULT_TIMEOUT,
        max_payload: int = transport.DEFAULT_MAX_PAYLOAD,
    ):
        self.state = AgentState(state_dir)
        self.numbering = numbering_by_name(numbering) if isinstance(numbering, str) else numbering
        self.behaviour = behaviour or Behaviour()
        self.evidence_provider = evidence_provider
        self.identity = identity or self.state.identity()
        self.http_timeout = http_timeout
        self.max_payload = max_payload
        self.key, self.report_key = self.state.load_or_create_keys(key_type)
        # Personalization data arrives encrypted to this key (SUIT firmware encryption 5.2).
        self.encryption_key = self.state.load_or_create_encryption_key()
        for knob in ("legacy_es256", "verify_only_sign1_es256"):
            if getattr(self.behaviour, knob) and self.key.kind != "p256":
                raise ValueError(f"{knob} needs a P-256 agent key")
        if (
            self.behaviour.legacy_selected_cipher_suite_label
            and LEGACY_SELECTED_CIPHER_SUITE in self.numbering.label_names
        ):
            raise ValueError(
                f"legacy_selected_cipher_suite_label: label {LEGACY_SELECTED_CIPHER_SUITE} is"
                f" {self.numbering.label_names[LEGACY_SELECTED_CIPHER_SUITE]} in the"
                f" {self.numbering.name} numbering; use draft-25"
            )
        # TEEP 8.1: the suite chosen from the last QueryRequest is used in both directions.
        self._selected_alg = self.key.default_algorithm

    # --- identity and provisioning ------------------------------------------------------------

    @property
    def kid(self) -> bytes:
        return self.key.kid

    @property
    def public_key_path(self) -> Path:
        return self.state.agent_public_key_path

    @property
    def encryption_public_key_path(self) -> Path:
        return self.state.encryption_public_key_path

    @property
    def supported_cipher_suites(self) -> tuple[ciphersuites.CipherSuite, ...]:
        """COSE_Sign1 with each algorithm of our key, the TEEP 8.1 one first."""
        return tuple(((ciphersuites.COSE_SIGN1, alg),) for alg in self.key.algorithms)

    def add_tam_key(self, data: bytes | str | TeepKey) -> list[TeepKey]:
        """Trust a TAM key: PEM (several blocks allowed), COSE_Key (CBOR or hex), the output
        of `manage.py tam_keys export` (text or --json), or a TeepKey."""
        keys = parse_public_keys(data)
        for key in keys:
            self.state.add_trust_anchor("tam", key)
        return keys

    def add_signer_key(self, data: bytes | str | TeepKey) -> list[TeepKey]:
        """Trust a Trusted Component signer key (SUIT envelopes), same formats as add_tam_key."""
        keys = parse_public_keys(data)
        for key in keys:
            self.state.add_trust_anchor("signers", key)
        return keys

    # --- RequestTA / UnrequestTA (RFC 9397 6.2.1; TEEP 7.2) -----------------------------------

    def request_ta(
        self, component: Sequence[bytes] | str, *, min_sequence: int | None = None
    ) -> bool:
        """Ask for a component in the next QueryResponse; False if it is already installed."""
        component_id = parse_component_id(component)
        installed = self.state.installed_component(component_id)
        if installed is not None and (
            min_sequence is None or installed.sequence_number >= min_sequence
        ):
            return False
        self.state.add_request(PendingRequest(component_id, min_sequence))
        return True

    def unrequest_ta(self, component: Sequence[bytes] | str) -> ComponentId:
        """Say a component is no longer needed: its manifest component id goes in
        unneeded-manifest-list. Accepts the manifest component id or the component id of an
        installed component; returns the manifest component id recorded."""
        wanted = parse_component_id(component)
        manifest_id = wanted
        for installed in self.state.installed():
            if installed.component_id == wanted or installed.manifest_component_id == wanted:
                manifest_id = installed.manifest_component_id or installed.component_id
                break
        self.state.add_unrequest(manifest_id)
        return manifest_id

    def installed_components(self) -> list[InstalledComponent]:
        return self.state.installed()

    def set_identity(self, identity: DeviceIdentity) -> None:
        """Keep the SUIT vendor / class ids this device matches in its state folder."""
        self.state.save_identity(identity)
        self.identity = identity

    # --- ProcessTeepMessage -------------------------------------------------------------------

    def handle_message(self, data: bytes) -> Reply:
        """Process one TEEP message from the TAM; the Reply holds the signed answer, if any."""
        try:
            payload = self._authenticate(data)
        except _Rejected as exc:
            return Reply("unparsed", None, dropped=str(exc))
        try:
            message = messages.decode(payload, self.numbering)
        except TeepDecodeError as exc:
            error = messages.Error(
                err_code=self._err("ERR_PERMANENT_ERROR"), err_msg=_short(f"invalid message: {exc}")
            )
            return self._reply("unparsed", error)
        received = messages.message_type_name(message)
        if isinstance(message, messages.QueryRequest):
            return self._handle_query_request(message)
        if isinstance(message, messages.Update):
            return self._handle_update(message)
        error = messages.Error(
            err_code=self._err("ERR_PERMANENT_ERROR"),
            err_msg=_short(f"a TAM does not send {received} messages"),
        )
        return self._reply(received, error)

    def _authenticate(self, data: bytes) -> bytes:
        """4.1.2 steps 1-4 with the trusted TAM keys; any signature we can verify will do."""
        try:
            signed = cose.parse(data)
        except CoseError as exc:
            raise _Rejected(f"not a COSE_Sign1 / COSE_Sign: {exc}") from None
        if self.behaviour.verify_only_sign1_es256 and (
            signed.structure != "COSE_Sign1" or signed.signatures[0].alg != ES256
        ):
            algs = ", ".join(str(info.alg) for info in signed.signatures)
            raise _Rejected(
                f"this agent verifies only a COSE_Sign1 with ES256 (-7), not a"
                f" {signed.structure} with alg {algs}"
            )
        keys = self.state.trust_anchors("tam")
        if not keys:
            raise _Rejected("no TAM key is trusted (add one with add_tam_key)")
        kids = {info.kid for info in signed.signatures if info.kid}
        keys.sort(key=lambda key: key.kid not in kids)  # keys named by a kid first
        for key in keys:
            try:
                return cose.verify(signed, key)
            except CoseError:
                continue
        raise _Rejected("signature does not verify with any trusted TAM key")

    # --- QueryRequest (7.2.1) -----------------------------------------------------------------

    def _handle_query_request(self, request: messages.QueryRequest) -> Reply:
        received = "query-request"
        token = request.token
        suite = ciphersuites.select_cipher_suite(
            request.supported_teep_cipher_suites, ours=self.supported_cipher_suites
        )
        if suite is None:
            # 8.1: protected with a suite mandatory for the TAM, i.e. our key's TEEP 8.1 one.
            self._selected_alg = self.key.default_algorithm
            error = messages.Error(
                token=token,
                err_code=self._err("ERR_UNSUPPORTED_CIPHER_SUITES"),
                err_msg="none of the offered cipher suites matches this agent's key",
                supported_teep_cipher_suites=list(self.supported_cipher_suites),
            )
            return self._reply(received, error)
        self._selected_alg = ciphersuites.algorithm_of_suite(suite)

        version = ciphersuites.select_version(request.versions)
        if version is None:
            error = messages.Error(
                token=token,
                err_code=self._err("ERR_UNSUPPORTED_MSG_VERSION"),
                err_msg="none of the offered TEEP versions is supported",
                versions=list(ciphersuites.SUPPORTED_VERSIONS),
            )
            return self._reply(received, error)

        bits = request.data_item_requested
        evidence = None
        if bits & messages.ATTESTATION:
            if self.evidence_provider is None:
                error = messages.Error(
                    token=token,
                    err_code=self._err("ERR_PERMANENT_ERROR"),
                    err_msg="attestation not supported by this agent",
                )
                return self._reply(received, error)
            mechanisms = tuple(
                request.supported_freshness_mechanisms or (messages.FRESHNESS_NONCE,)
            )
            if messages.FRESHNESS_NONCE not in mechanisms:
                error = messages.Error(
                    token=token,
                    err_code=self._err("ERR_UNSUPPORTED_FRESHNESS_MECHANISMS"),
                    supported_freshness_mechanisms=[messages.FRESHNESS_NONCE],
                )
                return self._reply(received, error)
            evidence = self.evidence_provider(
                AttestationRequest(request.challenge, mechanisms, self.key.public(), self.kid)
            )

        installed = self.state.installed()
        fields: dict[str, Any] = {
            "token": token,
            "selected_version": version if version != 0 else None,  # absent means 0 (4.3)
        }
        if evidence is not None:
            fields["attestation_payload"] = evidence.payload
            fields["attestation_payload_format"] = evidence.media_type
        if bits & messages.TRUSTED_COMPONENTS:
            fields["tc_list"] = [_system_property_claims(c) for c in installed]
        if bits & messages.EXTENSIONS:
            fields["ext_list"] = []  # this agent supports no extension
        if bits & messages.SUIT_REPORTS and installed:
            fields["suit_reports"] = [self._installed_report(c, token) for c in installed]
        installed_keys = {c.key: c for c in installed}
        requested = []
        for pending in self.state.requested():
            have = installed_keys.get(component_id_key(pending.component_id))
            if have is None or (
                pending.tc_manifest_sequence_number is not None
                and have.sequence_number < pending.tc_manifest_sequence_number
            ):
                requested.append(
                    messages.RequestedTcInfo(
                        pending.component_id, pending.tc_manifest_sequence_number
                    )
                )
        fields["requested_tc_list"] = requested or None
        fields["unneeded_manifest_list"] = self.state.unrequested() or None
        response = _query_response(fields, self.numbering)
        legacy: dict[int, Any] = {}
        if self.behaviour.legacy_selected_cipher_suite_label:
            suite = [[ciphersuites.COSE_SIGN1, self._signing_alg()]]
            legacy[LEGACY_SELECTED_CIPHER_SUITE] = suite
        if (
            self.behaviour.empty_tc_list
            and bits & messages.TRUSTED_COMPONENTS
            and not installed
            and response.tc_list is None  # the codec's rules left the empty array out
        ):
            legacy[self.numbering.label("tc-list")] = []
        return self._reply(received, response, legacy)

    def _installed_report(self, component: InstalledComponent, token: bytes | None) -> bytes:
        return build_report(
            manifest_digest=component.manifest_digest,
            manifest_uri=component.reference_uri,
            nonce=token,
            records=[_system_properties(component)],
            **self._report_signer(),
        )

    def _report_signer(self) -> dict[str, Any]:
        """build_report's signing arguments: the report key, or the TEEP key (a knob)."""
        if self.behaviour.sign_reports_with_teep_key:
            return {"signing_key": self.key, "alg": self._signing_alg()}
        return {"signing_key": self.report_key}

    # --- Update (7.2.2) -----------------------------------------------------------------------

    def _handle_update(self, update: messages.Update) -> Reply:
        reply = Reply("update", None)
        token = update.token
        if update.err_code is not None:
            reply.tam_error = {
                "err_code": update.err_code,
                "err_name": self.numbering.err_code_names.get(update.err_code, "unknown"),
                "err_msg": update.err_msg,
                "err_lang": update.err_lang,
            }
        if self.behaviour.temporary_error:
            error = messages.Error(
                token=token,
                err_code=self._err("ERR_TEMPORARY_ERROR"),
                err_msg="simulated temporary error",
            )
            return self._fill(reply, error)

        # 7.2.2: unlink first; an error there stops the Update before any install.
        for manifest_id in update.unneeded_manifest_list or ():
            key = component_id_key(manifest_id)
            for component in self.state.installed():
                if component.manifest_key == key:
                    try:
                        self.state.remove(component)
                    except OSError as exc:
                        reply.failures.append(f"unlink {component.text}: {exc}")
                        error = messages.Error(
                            token=token,
                            err_code=self._err("ERR_MANIFEST_PROCESSING_FAILED"),
                            err_msg=_short(f"unlink of {component.text} failed: {exc.strerror}"),
                        )
                        return self._fill(reply, error)
                    reply.removed.append(component.text)
            self.state.clear_unrequest(manifest_id)

        reports = []
        for raw in update.manifest_list or ():
            outcome, report = self._install_manifest(raw, token)
            reply.manifests.append(outcome)
            reports.append(report)
            if outcome.success:
                reply.installed.extend(outcome.components)
            else:
                who = ", ".join(outcome.components) or "manifest"
                reply.failures.append(f"{who}: {outcome.reason}: {outcome.message}")

        if reply.failures:
            failed = [m for m in reply.manifests if not m.success]
            error = messages.Error(
                token=token,
                err_code=self._err("ERR_MANIFEST_PROCESSING_FAILED"),
                err_msg=_short(
                    f"{len(failed)} of {len(reply.manifests)} manifests failed: {failed[0].message}"
                ),
                suit_reports=reports or None,
            )
            return self._fill(reply, error)
        return self._fill(reply, messages.Success(token=token, suit_reports=reports or None))

    def _install_manifest(self, raw: bytes, token: bytes | None) -> tuple[ManifestOutcome, bytes]:
        """Process one envelope; install it or nothing. Returns its outcome and SUIT report."""
        envelope = None
        try:
            try:
                envelope = parse_envelope(raw)
            except SuitError as exc:
                raise ManifestFailure("cbor-parse", f"envelope: {exc}") from None
            try:
                self._verify_envelope(envelope)
            except SuitError as exc:
                raise ManifestFailure("unauthorised", f"envelope: {exc}") from None
            for index, component_id in enumerate(envelope.component_ids):
                installed = self.state.installed_component(component_id)
                if installed is not None and envelope.sequence_number <= installed.sequence_number:
                    raise ManifestFailure(
                        "unauthorised",
                        f"rollback refused: sequence number {envelope.sequence_number} is not"
                        f" above installed {installed.sequence_number}",
                        section=SECTION_SEQUENCE_NUMBER,
                        component_index=index,
                    )
            staged = process_envelope(
                envelope,
                fetch=self._fetch,
                installed_image=self._installed_image,
                identity=self.identity,
                decrypt=self._decrypt,
                installed_manifest=self._installed_manifest,
                verify_dependency=self._verify_envelope,
            )
            for index, item in enumerate(staged):
                if self.behaviour.fails_install(item.component_id):
                    raise ManifestFailure(
                        "operation-failed",
                        "simulated install failure",
                        section=20,
                        component_index=index,
                    )
            installed = self.state.install(
                staged,
                envelope_bytes=raw,
                sequence_number=envelope.sequence_number,
                manifest_component_id=envelope.manifest_component_id,
                manifest_digest=envelope.digest,
                reference_uri=envelope.manifest.reference_uri or "",
            )
        except ManifestFailure as failure:
            components = [component_id_text(c) for c in envelope.component_ids] if envelope else []
            outcome = ManifestOutcome(
                components,
                envelope.sequence_number if envelope else None,
                False,
                failure.reason,
                str(failure),
            )
            return outcome, self._report(envelope, raw, token, failure=failure)
        for component in installed:
            self.state.clear_request(component.component_id)
        outcome = ManifestOutcome([c.text for c in installed], envelope.sequence_number, True)
        return outcome, self._report(envelope, raw, token, installed=installed)

    def _report(self, envelope, raw: bytes, token, *, failure=None, installed=()) -> bytes:
        # suit-reference = [manifest uri, manifest digest] (SUIT report 4); an envelope we could
        # not parse is named by the digest of its bytes, the best we have.
        digest = envelope.digest if envelope is not None else SuitDigest.sha256(raw)
        uri = (envelope.manifest.reference_uri or "") if envelope is not None else ""
        records = [_system_properties(c) for c in installed]
        report_failure = failure.report_failure() if failure is not None else None
        if report_failure is not None:
            records.append(report_failure.record)
        return build_report(
            manifest_digest=digest,
            manifest_uri=uri,
            nonce=token,
            records=records,
            failure=report_failure,
            **self._report_signer(),
        )

    def _fetch(self, uri: str, expected_size: int | None) -> bytes:
        return transport.fetch_payload(
            uri,
            self.state.download_path(uri),
            expected_size=expected_size,
            max_size=self.max_payload,
            timeout=self.http_timeout,
        )

    def _verify_envelope(self, envelope: Envelope) -> None:
        verify_envelope(
            envelope, self.state.trust_anchors("tam") + self.state.trust_anchors("signers")
        )

    def _decrypt(self, encryption_info: bytes, ciphertext: bytes) -> bytes:
        """SUIT firmware encryption 5.2: ES-DH to our key-agreement key, payload context."""
        return decrypt_with_key(
            encryption_info,
            ciphertext,
            self.encryption_key,
            context_other=suit_constants.CONTEXT_SUIT_PAYLOAD,
        )

    def _installed_manifest(self, digest: SuitDigest) -> bytes | None:
        """The envelope of an installed manifest with this digest (a dependency, TD 5.2.2)."""
        for component in self.state.installed():
            if component.manifest_digest == digest:
                return component.envelope_path.read_bytes()
        return None

    def _installed_image(self, component_id: ComponentId) -> bytes | None:
        installed = self.state.installed_component(component_id)
        return installed.read_payload() if installed is not None else None

    # --- signing the answer -------------------------------------------------------------------

    def _err(self, name: str) -> int:
        return self.numbering.err_code(name)

    def _fill(self, reply: Reply, message, legacy_options: dict | None = None) -> Reply:
        reply.body = self._sign(message, legacy_options)
        reply.sent = messages.message_type_name(message)
        return reply

    def _reply(self, received: str, message, legacy_options: dict | None = None) -> Reply:
        return self._fill(Reply(received, None), message, legacy_options)

    def _signing_alg(self) -> int:
        return ES256 if self.behaviour.legacy_es256 else self._selected_alg

    def _sign(self, message, legacy_options: dict | None = None) -> bytes:
        """COSE_Sign1 with our key, kid = RFC 9679 thumbprint in the unprotected header (TEEP 5).

        `legacy_options`: option labels to add that the codec does not write (Behaviour)."""
        payload = messages.encode(message, self.numbering)
        if legacy_options:
            payload = _with_options(payload, legacy_options)
        body = cose.sign1(
            payload,
            self.key,
            self._signing_alg(),
            kid=None if self.behaviour.omit_kid else self.key.kid,
        )
        if self.behaviour.tamper_signature:
            body = body[:-1] + bytes([body[-1] ^ 0x01])  # the last byte is the signature's
        return body

    # --- RequestPolicyCheck over HTTP (otrp-over-http 5) --------------------------------------

    def request_policy_check(
        self, tam_uri: str, *, max_exchanges: int = MAX_EXCHANGES
    ) -> PolicyCheckResult:
        """POST an empty body, then each answer, until the TAM answers 204 (or an empty 200).

        Never raises for protocol or HTTP trouble: the result says what happened (`ok`,
        `error`, `http_status`, `retry_after`); see raise_for_error().
        """
        result = PolicyCheckResult(tam_uri, self.numbering.name)
        body, sent = b"", "empty"
        for _ in range(max_exchanges):
            started = time.monotonic()
            try:
                answer = transport.post_teep(
                    tam_uri,
                    body,
                    timeout=self.http_timeout,
                    chunked=self.behaviour.chunked_body,
                    host=self.behaviour.fixed_host,
                )
            except transport.TransportError as exc:
                elapsed = time.monotonic() - started
                result.exchanges.append(
                    Exchange(sent, exc.status, None, elapsed, len(body), 0, str(exc))
                )
                result.error, result.http_status, result.retry_after = (
                    str(exc),
                    exc.status,
                    exc.retry_after,
                )
                return result
            exchange = Exchange(
                sent, answer.status, None, answer.latency, len(body), len(answer.body)
            )
            result.exchanges.append(exchange)
            if answer.status == 204 or not answer.body:
                return result  # otrp-over-http 5.3: an empty answer ends the session
            reply = self.handle_message(answer.body)
            exchange.received = reply.received
            result.installed += reply.installed
            result.removed += reply.removed
            result.failures += reply.failures
            if reply.tam_error:
                result.tam_errors.append(reply.tam_error)
            if reply.body is None:
                exchange.note = f"dropped: {reply.dropped}"
                result.failures.append(f"TAM message dropped: {reply.dropped}")
                result.error = f"TAM message dropped: {reply.dropped}"
                return result
            body, sent = reply.body, reply.sent
        result.error = f"the TAM kept answering after {max_exchanges} exchanges"
        return result


# --- helpers ---------------------------------------------------------------------------------


def parse_component_id(value: Sequence[bytes] | str) -> ComponentId:
    """A component id from a list of bytes, the text form ("TEEP-Device/SecureFS/h'8d82…'/ta"),
    or the hex of its CBOR encoding (e.g. 84 4b 54 45 45 50 ...)."""
    if not isinstance(value, str):
        parts = tuple(bytes(part) for part in value)
        if not parts:
            raise WireError("a component id has at least one part")
        return parts
    text = value.strip()
    compact = "".join(text.split())
    if compact and all(ch in "0123456789abcdefABCDEF" for ch in compact) and len(compact) % 2 == 0:
        try:
            decoded = cbor2.loads(bytes.fromhex(compact))
        except Exception:  # noqa: BLE001 - not CBOR: fall back to the text form
            decoded = None
        if isinstance(decoded, list) and decoded and all(isinstance(p, bytes) for p in decoded):
            return tuple(decoded)
    return tuple(component_id_from_text(text))


def parse_public_keys(data: bytes | str | TeepKey) -> list[TeepKey]:
    """Public keys from PEM (one or more blocks), COSE_Key CBOR or hex, or `tam_keys export`
    output (its text form with "COSE_Key: <hex>" lines, or its --json form)."""
    if isinstance(data, TeepKey):
        return [data.public()]
    text_data = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    stripped = text_data.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("tam_keys"), list):
            return [load_public_key(entry["pem"]) for entry in document["tam_keys"]]
    if "-----BEGIN" in stripped:
        pem_blocks = re.finditer(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", stripped, re.S)
        keys = [load_public_key(block.group(0)) for block in pem_blocks]
        if keys:
            return _unique(keys)
    lines = [line.split(":", 1)[-1].strip() for line in stripped.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if len(lines) > 1:
        return _unique([load_public_key(line) for line in lines])
    if isinstance(data, bytes) and not all(32 <= b < 127 or b in b"\r\n\t" for b in data):
        return [load_public_key(data)]  # binary COSE_Key
    return [load_public_key(lines[0] if lines else stripped)]


def _unique(keys: Iterable[TeepKey]) -> list[TeepKey]:
    seen, out = set(), []
    for key in keys:
        if key.kid not in seen:
            seen.add(key.kid)
            out.append(key)
    return out


def _system_property_claims(component: InstalledComponent) -> dict:
    """tc-list entry (TEEP 4.3, SUIT report 4): component id and the image digest."""
    return {
        0: list(component.component_id),
        3: SuitDigest(-16, component.image_sha256).to_cbor(),  # suit-parameter-image-digest
    }


def _system_properties(component: InstalledComponent) -> SystemProperties:
    return SystemProperties(
        component.component_id,
        {
            "image-digest": SuitDigest(-16, component.image_sha256),
            "image-size": component.image_size,
        },
    )


def _query_response(fields: dict, numbering: Numbering) -> messages.QueryResponse:
    """The QueryResponse; an empty tc-list / ext-list the codec refuses is left out."""
    while True:
        response = messages.QueryResponse(**fields)
        try:
            messages.encode(response, numbering)
            return response
        except messages.TeepEncodeError as exc:
            name = exc.field.removeprefix("options.").split("[")[0].replace("-", "_")
            if name not in ("tc_list", "ext_list") or fields.get(name) != []:
                raise
            fields[name] = None


def _with_options(payload: bytes, extra: dict[int, Any]) -> bytes:
    """The encoded message with `extra` added to its options map: for the legacy knobs only,
    which send what the codec refuses to write (label 5, an empty tc-list)."""
    item = cbor2.loads(payload)
    item[1].update(extra)
    return cbor2.dumps(item)


def _short(text: str, limit: int = 128) -> str:
    """err-msg / msg: at most 128 bytes of UTF-8 (TEEP 4.5, 4.6)."""
    data = text.encode()[:limit]
    return data.decode("utf-8", errors="ignore") or "error"
