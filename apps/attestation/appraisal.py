"""What an appraisal returns, whichever Verifier made it, and the errors around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.teep.wire.eat import AttestationResult


class VerifierUnavailable(Exception):
    """The Verifier could not be reached or answered 5xx / 429 / too late: nothing was appraised.

    TEEP endpoint: 503 with Retry-After, nothing stored (DESIGN.md step 4). The Celery task
    retries on it; a negative appraisal is a result, never this.
    """


class VerifierProtocolError(Exception):
    """The Verifier answered, but not as its API says (4xx, undecodable body, bad EAR signature).

    Retrying does not help: the appraisal is recorded with status "error" and an alert-worthy
    reason (CLIENT-AND-STANDIN.md 4.3, step 6).
    """


@dataclass
class Appraisal:
    """An Attestation Result as the TAM acts on it.

    status: affirming / warning / contraindicated / none (from the Verifier) or error (the
    Verifier failed in a way retrying will not fix). Only "affirming" makes an agent key trusted.
    """

    status: str
    backend: str
    reasons: list[str] = field(default_factory=list)
    trust_vector: dict[str, int] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    agent_kid: str = ""
    model: str = "evidence"  # "evidence" (Background Check) or "attestation-result" (Passport)
    raw_result: bytes = b""
    challenge_hash: str = ""
    result: AttestationResult | None = None
    record_id: int | None = None

    @property
    def affirming(self) -> bool:
        return self.status == "affirming"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)
