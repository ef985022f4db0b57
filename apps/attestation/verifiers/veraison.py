"""Veraison's challenge-response API as a Verifier (specs/veraison/NOTES.md, CLIENT-AND-STANDIN.md).

One appraisal = one session, created when the Evidence arrives (sessions live 150 s):
1. POST newSession?nonce=<padded base64url(challenge)> -> 201, Location (relative, resolved with
   urljoin); the session's nonce must decode to our challenge (8..64 bytes);
2. POST the Evidence with its media type, re-serialised with quoted parameter values (Veraison
   answers 400 to the TEEP draft's unquoted `eat_profile=urn:...`); 200 = result, 202 = poll GET
   until "complete" / "failed" or our deadline;
3. the EAR JWT verifies with the pinned key, has an accepted profile, a recent iat and, if it
   echoes eat_nonce, our challenge;
4. the agent key binding: `ear.veraison.key-attestation.akpub` when the scheme provides it,
   otherwise `cnf` of the Evidence, read only after Veraison affirmed it;
5. DELETE the session (best effort).

Errors: connection failures, timeouts, 5xx and 429 -> VerifierUnavailable (retry later, 503 to
the agent); other 4xx, undecodable answers and EAR failures -> VerifierProtocolError.
Only the standard library is used (http.client, ssl).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

from cryptography.hazmat.primitives import serialization

from apps.attestation.appraisal import Appraisal, VerifierProtocolError, VerifierUnavailable
from apps.teep.wire import eat
from apps.teep.wire.eat import AttestationError
from apps.teep.wire.keys import TeepKey, load_public_key

NAME = "veraison"
SESSION_MEDIA_TYPE = "application/vnd.veraison.challenge-response-session+json"
NEW_SESSION_PATH = "challenge-response/v1/newSession"
MAX_BODY = 1 << 20


def load_pinned_key(path: str | Path) -> TeepKey:
    """The EAR verification key: a PEM, a JWK, or Veraison's discovery document."""
    data = Path(path).read_bytes()
    text = data.strip()
    if text.startswith(b"{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise AttestationError(f"{path}: not JSON: {exc}") from None
        jwk = document.get("ear-verification-key", document)
        return eat.key_from_jwk(jwk)
    return load_public_key(data)


@dataclass(frozen=True)
class VeraisonConfig:
    base_url: str
    ear_key: TeepKey
    timeout: float = 10.0
    deadline: float = 30.0
    ca_file: str | None = None
    profiles: tuple[str, ...] = eat.EAR_PROFILES
    max_result_age: int = 300
    clock_skew: int = 60


@dataclass
class _Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self, what: str) -> dict:
        try:
            document = json.loads(self.body)
        except ValueError:
            raise VerifierProtocolError(f"Veraison {what}: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise VerifierProtocolError(f"Veraison {what}: the answer is not a JSON object")
        return document


class VeraisonVerifier:
    name = NAME

    def __init__(self, config: VeraisonConfig):
        self.config = config

    @classmethod
    def from_settings(cls) -> VeraisonVerifier:
        from django.core.exceptions import ImproperlyConfigured

        from apps.attestation.conf import setting

        base_url = setting("VERAISON_BASE_URL")
        key_file = setting("VERAISON_EAR_PUBLIC_KEY_FILE")
        if not base_url or not key_file:
            raise ImproperlyConfigured(
                "ATTESTATION_BACKEND=veraison needs VERAISON_BASE_URL and "
                "VERAISON_EAR_PUBLIC_KEY_FILE"
            )
        try:
            key = load_pinned_key(key_file)
        except (OSError, ValueError) as exc:
            raise ImproperlyConfigured(f"VERAISON_EAR_PUBLIC_KEY_FILE {key_file}: {exc}") from None
        return cls(
            VeraisonConfig(
                base_url=base_url,
                ear_key=key,
                timeout=float(setting("VERAISON_TIMEOUT_SECONDS")),
                deadline=float(setting("VERAISON_DEADLINE_SECONDS")),
                ca_file=setting("VERAISON_CA_FILE") or None,
                max_result_age=int(setting("ATTESTATION_RESULT_MAX_AGE_SECONDS")),
            )
        )

    # --- the appraisal --------------------------------------------------------------------------

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
        started = time.monotonic()
        now = time.time() if now is None else now
        challenge_hash = hashlib.sha256(challenge).hexdigest()
        local = Appraisal(
            status="contraindicated",
            backend=NAME,
            agent_kid=agent_key.kid.hex(),
            challenge_hash=challenge_hash,
            trust_vector={"instance-identity": 99},
        )
        if not eat.NONCE_MIN <= len(challenge) <= eat.NONCE_MAX:
            raise VerifierProtocolError(
                f"Veraison takes 8..64-byte nonces; the challenge has {len(challenge)} bytes"
            )
        if challenge_expires_at is not None and challenge_expires_at.timestamp() <= now:
            local.reasons = ["the challenge expired before the Evidence was appraised"]
            return local
        try:
            content_type = eat.normalize_media_type(media_type)
        except AttestationError:
            local.reasons = [f"attestation-payload-format {media_type!r} is not a media type"]
            return local

        new_session_url = urljoin(self.config.base_url.rstrip("/") + "/", NEW_SESSION_PATH)
        new_session_url += "?" + urlencode({"nonce": eat.b64url(challenge, pad=True)})
        response = self._request("POST", new_session_url, b"", started)
        if response.status != 201:
            _raise_for(response, "newSession")
        location = response.headers.get("Location")
        if not location:
            raise VerifierProtocolError("Veraison newSession: 201 without a Location header")
        session_url = urljoin(new_session_url, location)
        try:
            session = response.json("newSession")
            try:
                session_nonce = eat.b64decode_tolerant(session.get("nonce") or "", "session nonce")
            except AttestationError as exc:
                raise VerifierProtocolError(f"Veraison newSession: {exc}") from None
            if session_nonce != challenge:
                raise VerifierProtocolError(
                    "Veraison newSession: the session nonce is not our challenge"
                )
            session = self._submit(session_url, evidence, content_type, started)
            return self._appraisal(session, evidence, challenge, agent_key, now, challenge_hash)
        finally:
            self._delete(session_url)

    def _submit(self, session_url: str, evidence: bytes, content_type: str, started: float) -> dict:
        response = self._request("POST", session_url, evidence, started, content_type=content_type)
        if response.status not in (200, 202):
            _raise_for(response, "Evidence submission")
        session = response.json("Evidence submission")
        delay = 0.1
        while session.get("status") in ("waiting", "processing"):
            if time.monotonic() - started + delay > self.config.deadline:
                raise VerifierUnavailable(
                    f"Veraison did not finish the appraisal within {self.config.deadline:g} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            response = self._request("GET", session_url, None, started)
            if response.status != 200:
                _raise_for(response, "session poll")
            session = response.json("session poll")
        if session.get("status") == "failed":
            raise VerifierUnavailable("Veraison could not appraise the Evidence (session failed)")
        if session.get("status") != "complete":
            raise VerifierProtocolError(
                f"Veraison session status {session.get('status')!r} is unknown"
            )
        return session

    def _appraisal(
        self,
        session: dict,
        evidence: bytes,
        challenge: bytes,
        agent_key: TeepKey,
        now: float,
        challenge_hash: str,
    ) -> Appraisal:
        token = session.get("result")
        if not isinstance(token, str):
            raise VerifierProtocolError("Veraison session is complete but has no EAR result")
        try:
            result = eat.parse_ear_jwt(token, self.config.ear_key, profiles=self.config.profiles)
        except AttestationError as exc:
            raise VerifierProtocolError(f"Veraison EAR: {exc}") from None
        if result.nonce is not None and result.nonce != challenge:
            raise VerifierProtocolError("Veraison EAR: eat_nonce is not our challenge")
        if (
            result.iat is None
            or result.iat > now + self.config.clock_skew
            or now - result.iat > self.config.max_result_age
        ):
            raise VerifierProtocolError("Veraison EAR: iat is missing or not recent")

        reasons = []
        for name, appraisal in result.submods.items():
            line = f"Veraison {name}: {appraisal.status}"
            problem = (appraisal.policy_claims or {}).get("problem")
            if problem:
                line += f" ({problem})"
            reasons.append(line)
        status = result.status
        claims: dict = {"ear_profile": result.profile, "submods": sorted(result.submods)}
        if status == "affirming":
            bound, why = _key_binding(result, evidence, agent_key)
            if not bound:
                status = "contraindicated"
                reasons.append(why)
        try:
            evidence_claims, _ = eat.parse_eat(evidence)
            claims.update(eat.readable_claims(evidence_claims))
        except AttestationError:
            pass  # not an EAT (e.g. a PSA or TPM token): Veraison's annotated evidence stays in raw
        return Appraisal(
            status=status,
            backend=NAME,
            reasons=reasons,
            trust_vector=result.trust_vector,
            claims=claims,
            agent_kid=agent_key.kid.hex(),
            raw_result=token.encode("ascii"),
            challenge_hash=challenge_hash,
            result=result,
        )

    # --- HTTP -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        started: float,
        *,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> _Response:
        remaining = self.config.deadline - (time.monotonic() - started)
        if remaining <= 0:
            raise VerifierUnavailable(f"Veraison did not answer within {self.config.deadline:g} s")
        timeout = min(timeout or self.config.timeout, remaining)
        parts = urlsplit(url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.config.ca_file)
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=context
            )
        elif parts.scheme == "http":
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        else:
            raise VerifierProtocolError(f"Veraison URL scheme {parts.scheme!r} is not http(s)")
        headers = {"Accept": SESSION_MEDIA_TYPE}
        if body is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read(MAX_BODY + 1)
            if len(data) > MAX_BODY:
                raise VerifierProtocolError("Veraison answer is larger than 1 MiB")
            return _Response(response.status, response.headers, data)
        except TimeoutError as exc:
            raise VerifierUnavailable(
                f"Veraison timed out ({method} {parts.path}): {exc}"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise VerifierUnavailable(
                f"Veraison unreachable ({method} {parts.path}): {exc}"
            ) from None
        finally:
            connection.close()

    def _delete(self, session_url: str) -> None:
        try:
            self._request(
                "DELETE", session_url, None, time.monotonic(), timeout=min(2.0, self.config.timeout)
            )
        except (VerifierUnavailable, VerifierProtocolError):
            pass  # the session expires on its own after 150 s


def _raise_for(response: _Response, what: str) -> None:
    detail = ""
    try:
        problem = json.loads(response.body)
        if isinstance(problem, dict):
            detail = str(problem.get("detail") or problem.get("title") or "")
    except ValueError:
        detail = response.body[:200].decode("utf-8", "replace")
    message = f"Veraison {what}: HTTP {response.status}" + (f": {detail}" if detail else "")
    if response.status == 415 and response.headers.get("Accept"):
        message += f" (accepted: {response.headers.get('Accept')})"
    if response.status == 429 or response.status >= 500:
        raise VerifierUnavailable(message)
    raise VerifierProtocolError(message)


def _key_binding(
    result: eat.AttestationResult, evidence: bytes, agent_key: TeepKey
) -> tuple[bool, str]:
    for appraisal in result.submods.values():
        akpub = (appraisal.key_attestation or {}).get("akpub")
        if isinstance(akpub, str):
            try:
                der = eat.b64decode_tolerant(akpub, "akpub")
                key = TeepKey(serialization.load_der_public_key(der))
            except (AttestationError, ValueError):
                return False, "Veraison key-attestation akpub is not a usable key"
            if key.kid == agent_key.kid:
                return True, ""
            return False, "Veraison key-attestation names another key than the agent key"
    try:
        claims, _ = eat.parse_eat(evidence)
        if eat.cnf_matches(claims, agent_key):
            return True, ""
        return (
            False,
            "Evidence cnf names another key than the agent key that signed the QueryResponse",
        )
    except AttestationError as exc:
        return False, f"nothing binds the agent key to the appraised Evidence: {exc}"
