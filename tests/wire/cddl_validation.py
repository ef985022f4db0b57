"""Validate TEEP payloads against the draft's CDDL with cddl-verifier (tests only; ENGINEERING.md
2.2).

Two schemas, each parsed once:
- CURRENT: specs/cddl/teep-complete.cddl as shipped (TEEP -26 CDDL + SUIT + COSE).
- PRE_26: the same concatenation with the pre-26 TEEP CDDL in front instead (INDEX.md "cddl/":
  TEEP first, then shim, SUIT manifest, trust domains, report, MTI, encryption, COSE).
"""

from functools import cache

from cddl_verifier import Validator

from apps.teep.wire.numbering import CURRENT, PRE_26, Numbering
from tests.conftest import _shared_dir

ROOT = "teep-message"
# teep-complete.cddl = TEEP CDDL + everything from this line on (suit-envelope-shim.cddl first).
_NON_TEEP_PARTS = "; origin: github.com/ietf-teep/teep-protocol, path cddl/suit-envelope-shim.cddl"


def _cddl_dir():
    return _shared_dir() / "specs" / "cddl"


@cache
def schema_text(numbering_name: str) -> str:
    complete = (_cddl_dir() / "teep-complete.cddl").read_text()
    if numbering_name == CURRENT.name:
        return complete
    if numbering_name == PRE_26.name:
        teep = (_cddl_dir() / "draft-ietf-teep-protocol.pre-26-numbering.cddl").read_text()
        return teep + "\n" + complete[complete.index(_NON_TEEP_PARTS) :]
    raise ValueError(numbering_name)


@cache
def validator(numbering_name: str) -> Validator:
    return Validator(schema_text(numbering_name))


def cddl_errors(
    data: bytes, numbering: Numbering = CURRENT, root_type: str = ROOT
) -> tuple[str, ...]:
    """() if `data` matches `root_type`, else cddl-verifier's messages."""
    result = validator(numbering.name).validate(data, root_type=root_type)
    return () if result.valid else (result.errors or ("invalid",))


def is_valid(data: bytes, numbering: Numbering = CURRENT, root_type: str = ROOT) -> bool:
    return not cddl_errors(data, numbering, root_type)
