"""The wire format's own errors. Nothing in apps.teep.wire raises anything else on bad input."""


class WireError(ValueError):
    """Base class: any input the wire format refuses."""


class TeepDecodeError(WireError):
    """A TEEP message is not valid CBOR or does not match the draft's CDDL.

    `field` names the offending field in the draft's words (e.g. "token",
    "options.requested-tc-list[0].component-id"); str() reads "field: problem".
    """

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class CoseError(WireError):
    """A COSE structure is malformed, uses an algorithm we refuse, or does not verify."""


class SuitError(WireError):
    """A SUIT envelope, report or encryption structure is invalid or does not verify."""
