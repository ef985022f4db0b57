"""The two TEEP wire numberings, each as one table.

CURRENT is the numbering of the published draft-ietf-teep-protocol-26 and of the IANA TEEP
registries (message types 14.2, error codes 14.4, CBOR labels 14.5 / Section 6). PRE_26 is
the numbering of the draft's master before PR #420, still sent by agents in the field
(specs/cddl/draft-ietf-teep-protocol.pre-26-numbering.cddl). DESIGN.md "Wire numbering":
the caller selects the profile (per endpoint or per device); nothing guesses from bytes.

No other module in the project writes a TEEP message-type, label or err-code number.
"""

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

MESSAGE_TYPE_NAMES = ("query-request", "query-response", "update", "success", "error")

LABEL_NAMES = (
    "supported-teep-cipher-suites",
    "challenge",
    "versions",
    "supported-suit-cose-profiles",
    "selected-version",
    "attestation-payload",
    "tc-list",
    "ext-list",
    "manifest-list",
    "msg",
    "err-msg",
    "attestation-payload-format",
    "requested-tc-list",
    "unneeded-manifest-list",
    "component-id",
    "tc-manifest-sequence-number",
    "have-binary",
    "suit-reports",
    "token",
    "supported-freshness-mechanisms",
    "err-lang",
    "err-code",
)

ERR_CODE_NAMES = (
    "ERR_PERMANENT_ERROR",
    "ERR_UNSUPPORTED_EXTENSION",
    "ERR_UNSUPPORTED_FRESHNESS_MECHANISMS",
    "ERR_UNSUPPORTED_MSG_VERSION",
    "ERR_UNSUPPORTED_CIPHER_SUITES",
    "ERR_BAD_CERTIFICATE",
    "ERR_ATTESTATION_REQUIRED",
    "ERR_UNSUPPORTED_SUIT_REPORT",
    "ERR_CERTIFICATE_EXPIRED",
    "ERR_TEMPORARY_ERROR",
    "ERR_MANIFEST_PROCESSING_FAILED",
)


@dataclass(frozen=True)
class Numbering:
    """name -> number for message types, option labels and err-codes, plus the reverse maps."""

    name: str
    message_types: Mapping[str, int]
    labels: Mapping[str, int]
    err_codes: Mapping[str, int]
    message_type_names: Mapping[int, str] = field(init=False)
    label_names: Mapping[int, str] = field(init=False)
    err_code_names: Mapping[int, str] = field(init=False)

    def __post_init__(self):
        for attr in ("message_types", "labels", "err_codes"):
            table = dict(getattr(self, attr))
            if len(set(table.values())) != len(table):
                raise ValueError(f"{self.name}: duplicate numbers in {attr}")
            object.__setattr__(self, attr, MappingProxyType(table))
        object.__setattr__(self, "message_type_names", _reverse(self.message_types))
        object.__setattr__(self, "label_names", _reverse(self.labels))
        object.__setattr__(self, "err_code_names", _reverse(self.err_codes))

    def label(self, name: str) -> int:
        return self.labels[name]

    def message_type(self, name: str) -> int:
        return self.message_types[name]

    def err_code(self, name: str) -> int:
        return self.err_codes[name]


def _reverse(table: Mapping[str, int]) -> Mapping[int, str]:
    return MappingProxyType({number: name for name, number in table.items()})


# draft-ietf-teep-protocol-26, Sections 4 and 6, IANA registries 14.2, 14.4, 14.5.
CURRENT = Numbering(
    name="draft-26",
    message_types=dict(zip(MESSAGE_TYPE_NAMES, (1, 2, 3, 4, 5))),
    labels=dict(zip(LABEL_NAMES, range(1, 23))),
    err_codes=dict(zip(ERR_CODE_NAMES, range(1, 12))),
)

# Before PR #420: Success 5, Error 6; label 5 (selected-teep-cipher-suite) had been removed,
# leaving labels 6..23; ERR_MANIFEST_PROCESSING_FAILED 17.
PRE_26 = Numbering(
    name="draft-25",
    message_types=dict(zip(MESSAGE_TYPE_NAMES, (1, 2, 3, 5, 6))),
    labels=dict(zip(LABEL_NAMES, (1, 2, 3, 4, *range(6, 24)))),
    err_codes=dict(zip(ERR_CODE_NAMES, (*range(1, 11), 17))),
)

NUMBERINGS: Mapping[str, Numbering] = MappingProxyType({n.name: n for n in (CURRENT, PRE_26)})


def numbering_by_name(name: str) -> Numbering:
    try:
        return NUMBERINGS[name]
    except KeyError:
        raise ValueError(f"unknown TEEP numbering {name!r}; choose one of {', '.join(NUMBERINGS)}") from None
