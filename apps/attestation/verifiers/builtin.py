"""The built-in Verifier: appraises EAT Evidence (COSE_Sign1 CWT) against the endorsements and
reference values registered in the admin, and answers with an EAR-shaped result.

Checks, in order (RFC 9334 8; TEEP 5 and 9):
1. the Evidence is a signed EAT and its signature verifies with an active attester key,
   found by the COSE kid, else by the UEID claim; a key bound to a UEID only signs for it;
2. freshness: eat_nonce equals the challenge (TEEP 9, nonce mechanism), the challenge has not
   expired, exp (if any) has not passed; single use is enforced by the caller (services);
3. the TEEP profile's required claims are present (TEEP 5: ueid, oemid, hwmodel, hwversion,
   manifests, cnf);
4. cnf names the key that signed the QueryResponse (RFC 9679 thumbprints, TEEP 7.1.1.1);
5. hwmodel / hwversion / oemid and measurements against the active reference values.

Each outcome sets AR4SI trustworthiness claims (values as in draft-ietf-rats-ar4si and as
Veraison uses them: 2 affirming, 33 unrecognised, 96 contraindicated, 97 not recognised,
99 cryptographic validation failed); ear_status is the worst tier among them (EAR 3.2).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import cbor2

from apps.attestation.appraisal import Appraisal
from apps.attestation.models import AttestationKey, ReferenceValue
from apps.teep.wire import eat
from apps.teep.wire.eat import AttestationError
from apps.teep.wire.keys import TeepKey

NAME = "builtin"
SUBMOD = "TEEP-EAT"
POLICY_ID = "policy:tam-portal/builtin-reference-values"
VERIFIER_ID = {"developer": "tam-portal", "build": "builtin verifier"}

AFFIRMING = 2
UNRECOGNISED = 33
CONTRAINDICATED = 96
NOT_RECOGNISED = 97
CRYPTO_FAILED = 99

# Media types the built-in Verifier reads as a COSE_Sign1 EAT (RFC 9782 eat+cwt; older spellings).
EAT_MEDIA_TYPES = frozenset({"application/eat+cwt", "application/eat-cwt", "application/cwt"})


class BuiltinVerifier:
    name = NAME

    def appraise(
        self,
        *,
        evidence: bytes,
        media_type: str,
        challenge: bytes,
        agent_key: TeepKey,
        challenge_expires_at: datetime | None = None,
        now: float | None = None,
    ) -> Appraisal:
        now = time.time() if now is None else now
        run = _Run(agent_key=agent_key, challenge=challenge, now=now)
        try:
            mtype, _ = eat.parse_media_type(media_type)
        except AttestationError:
            mtype = None
        if mtype not in EAT_MEDIA_TYPES:
            return run.finish_failed(
                "the built-in Verifier appraises EAT Evidence (application/eat+cwt), "
                f"not {media_type!r}",
                {"instance-identity": NOT_RECOGNISED},
            )
        try:
            claims, message = eat.parse_eat(evidence)
        except AttestationError as exc:
            return run.finish_failed(
                f"Evidence is not a signed EAT: {exc}", {"instance-identity": CRYPTO_FAILED}
            )
        run.claims = claims

        key_row = run.authenticate(claims, message)
        if key_row is None:
            return run.finish()
        run.check_freshness(claims, challenge_expires_at)
        run.check_required_claims(claims)
        run.check_cnf(claims)
        run.check_reference_values(claims)
        run.identity_ok(key_row)
        return run.finish()


class _Run:
    """One appraisal: accumulates reasons and trust-vector claims."""

    def __init__(self, *, agent_key: TeepKey, challenge: bytes, now: float):
        self.agent_key = agent_key
        self.challenge = challenge
        self.now = now
        self.reasons: list[str] = []
        self.vector: dict[str, int] = {}
        self.claims: dict = {}
        self.key_row: AttestationKey | None = None
        self.cnf_bound = False

    # --- checks -------------------------------------------------------------------------------

    def authenticate(self, claims: dict, message) -> AttestationKey | None:
        kid = eat.eat_kid(message)
        keys = AttestationKey.objects.filter(
            active=True, purpose=AttestationKey.Purpose.ENDORSEMENT
        )
        candidates = list(keys.filter(kid=kid.hex())) if kid else []
        ueid = claims.get(eat.UEID)
        if not candidates and isinstance(ueid, bytes):
            candidates = list(keys.filter(ueid=ueid.hex()))
        if not candidates:
            where = f"kid {kid.hex()}" if kid else "no kid"
            if isinstance(ueid, bytes):
                where += f", UEID {ueid.hex()}"
            self._fail(
                f"no active attestation key is registered for this Evidence ({where})",
                "instance-identity",
                NOT_RECOGNISED,
            )
            return None
        for row in candidates:
            try:
                eat.verify_eat(message.encoded, row.teep_key())
            except (AttestationError, ValueError):
                continue
            if row.ueid and (not isinstance(ueid, bytes) or ueid.hex() != row.ueid.lower()):
                self._fail(
                    f"attestation key {row.name} is bound to UEID {row.ueid}, the Evidence names "
                    f"{ueid.hex() if isinstance(ueid, bytes) else 'none'}",
                    "instance-identity",
                    CONTRAINDICATED,
                )
                return None
            self.key_row = row
            return row
        names = ", ".join(row.name for row in candidates)
        self._fail(
            f"Evidence signature does not verify with attestation key {names}",
            "instance-identity",
            CRYPTO_FAILED,
        )
        return None

    def check_freshness(self, claims: dict, challenge_expires_at: datetime | None) -> None:
        try:
            nonce = eat.eat_nonce(claims)
        except AttestationError as exc:
            self._fail(str(exc), "instance-identity", CRYPTO_FAILED)
            return
        if nonce is None:
            self._fail(
                "Evidence has no eat_nonce: it does not answer our challenge",
                "instance-identity",
                CRYPTO_FAILED,
            )
        elif nonce != self.challenge:
            self._fail(
                "eat_nonce does not match the challenge we sent", "instance-identity", CRYPTO_FAILED
            )
        if challenge_expires_at is not None and challenge_expires_at.timestamp() <= self.now:
            self._fail(
                "the challenge expired at "
                f"{challenge_expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
                "instance-identity",
                CRYPTO_FAILED,
            )
        exp = claims.get(eat.EXP)
        if type(exp) is int and exp <= self.now:
            self._fail("Evidence has expired (exp)", "instance-identity", CRYPTO_FAILED)

    def check_required_claims(self, claims: dict) -> None:
        missing = [
            eat.CLAIM_NAMES[label] for label in eat.TEEP_REQUIRED_CLAIMS if label not in claims
        ]
        if missing:
            self._fail(
                f"missing required claim(s) of the TEEP EAT profile: {', '.join(missing)}",
                "configuration",
                CONTRAINDICATED,
            )

    def check_cnf(self, claims: dict) -> None:
        if eat.CNF not in claims:
            return  # reported as a missing required claim
        try:
            bound = eat.cnf_key_or_kid(claims)
        except AttestationError as exc:
            self._fail(str(exc), "instance-identity", CONTRAINDICATED)
            return
        bound_kid = bound.kid if isinstance(bound, TeepKey) else bound
        if bound_kid != self.agent_key.kid:
            self._fail(
                f"cnf names key {bound_kid.hex()[:16]}…, not the agent key "
                f"{self.agent_key.kid.hex()[:16]}… that signed the QueryResponse",
                "instance-identity",
                CONTRAINDICATED,
            )
        else:
            self.cnf_bound = True

    def check_reference_values(self, claims: dict) -> None:
        hwmodel = claims.get(eat.HWMODEL)
        hwmodel_hex = hwmodel.hex() if isinstance(hwmodel, bytes) else ""
        refs = ReferenceValue.objects.filter(active=True, scope_hwmodel__in=["", hwmodel_hex])
        expected: dict[tuple[str, str], set[str]] = {}
        for ref in refs:
            expected.setdefault((ref.claim, ref.measurement_name), set()).add(ref.expected.lower())

        actual = {
            "hwmodel": hwmodel_hex or None,
            "hwversion": eat.hwversion_text(claims),
            "oemid": eat.oemid_text(claims[eat.OEMID]) if eat.OEMID in claims else None,
        }
        hardware_checked = False
        for claim in ("hwmodel", "hwversion", "oemid"):
            wanted = expected.get((claim, ""))
            if not wanted:
                continue
            hardware_checked = True
            value = actual[claim]
            if value is None or value.lower() not in wanted:
                self._fail(
                    f"{claim} {value or '(absent)'} matches no reference value",
                    "hardware",
                    NOT_RECOGNISED,
                )
        if hardware_checked:
            self._set("hardware", AFFIRMING)

        wanted_measurements = {
            name: values for (claim, name), values in expected.items() if claim == "measurement"
        }
        if not wanted_measurements:
            return
        try:
            measured = {
                m["name"]: m["digest"] for m in eat.measured_components(claims) if "name" in m
            }
        except AttestationError as exc:
            self._fail(str(exc), "executables", UNRECOGNISED)
            return
        for name, values in sorted(wanted_measurements.items()):
            digest = measured.get(name)
            if digest is None:
                self._fail(f"measurement {name!r} is not reported", "executables", UNRECOGNISED)
            elif digest.lower() not in values:
                self._fail(
                    f"measurement {name!r} {digest[:16]}… matches no reference value",
                    "executables",
                    UNRECOGNISED,
                )
        self._set("executables", AFFIRMING)

    def identity_ok(self, key_row: AttestationKey) -> None:
        self._set("instance-identity", AFFIRMING)

    # --- bookkeeping --------------------------------------------------------------------------

    def _fail(self, reason: str, claim: str, value: int) -> None:
        self.reasons.append(reason)
        current = self.vector.get(claim)
        if current is None or current < value or current == AFFIRMING:
            self.vector[claim] = value

    def _set(self, claim: str, value: int) -> None:
        """Set a claim unless a failure already set it."""
        self.vector.setdefault(claim, value)

    def finish_failed(self, reason: str, vector: dict[str, int]) -> Appraisal:
        self.reasons.append(reason)
        self.vector.update(vector)
        return self.finish()

    def finish(self) -> Appraisal:
        status = eat.status_from_vector(self.vector)
        if self.reasons and status == "affirming":  # a failure must never read as affirming
            status = "contraindicated"
        summary = eat.readable_claims(self.claims) if self.claims else {}
        if self.claims:
            try:
                summary["measurements"] = [
                    m for m in eat.measured_components(self.claims) if "name" in m
                ]
            except AttestationError:
                pass
        if self.key_row is not None:
            summary["attestation_key"] = self.key_row.name
        ear_claims = self._ear_claims(status)
        return Appraisal(
            status=status,
            backend=NAME,
            reasons=self.reasons
            or [
                "Evidence verified: signature, challenge, required claims, cnf and reference values"
            ],
            trust_vector=dict(self.vector),
            claims=summary,
            agent_kid=self.agent_key.kid.hex(),
            raw_result=cbor2.dumps(ear_claims, canonical=True),
            challenge_hash=hashlib.sha256(self.challenge).hexdigest(),
            result=eat.ear_from_claims(ear_claims),
        )

    def _ear_claims(self, status: str) -> dict:
        """The result as an EAR claims-set in its CBOR form (EAR #03, TEEP extension 65000)."""
        labels = {name: label for label, name in eat.TRUST_VECTOR_LABELS.items()}
        appraisal = {
            1000: eat.TIER_BY_STATUS[status],
            1001: {labels[name]: value for name, value in self.vector.items()} or {0: 0},
            1003: [POLICY_ID],
        }
        teep = {
            label: self.claims[label]
            for label in (
                eat.EAT_NONCE,
                eat.UEID,
                eat.OEMID,
                eat.HWMODEL,
                eat.HWVERSION,
                eat.MANIFESTS,
            )
            if label in self.claims
        }
        if teep and self.key_row is not None:
            appraisal[65000] = teep
        ear = {
            eat.EAT_PROFILE: eat.EAR_PROFILE_03,
            eat.IAT: int(self.now),
            1004: {0: VERIFIER_ID["developer"], 1: VERIFIER_ID["build"]},
            eat.SUBMODS: {SUBMOD: appraisal},
        }
        if self.cnf_bound:  # TEEP 7.1.1.1: the result names the agent key it vouches for
            ear[eat.CNF] = {eat.CNF_KID: self.agent_key.kid}
        return ear
