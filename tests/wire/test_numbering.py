"""The two numbering tables match the two CDDL files they come from, number for number."""

import re

import pytest

from apps.teep.wire.numbering import CURRENT, PRE_26, numbering_by_name


def _cddl_assignments(path):
    text = path.read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^([A-Za-z][\w-]*) = (\d+)\s*$", text, re.M)}


@pytest.mark.parametrize(
    "numbering, filename",
    [(CURRENT, "draft-ietf-teep-protocol.cddl"), (PRE_26, "draft-ietf-teep-protocol.pre-26-numbering.cddl")],
)
def test_numbering_matches_its_cddl(numbering, filename, specs_dir):
    cddl = _cddl_assignments(specs_dir / "cddl" / filename)
    for name, number in numbering.labels.items():
        assert cddl[name] == number, name
    for name, number in numbering.err_codes.items():
        assert cddl[name] == number, name
    for name, number in numbering.message_types.items():
        assert cddl[f"TEEP-TYPE-{name}"] == number, name


def test_current_numbering_is_the_iana_one():
    assert CURRENT.message_type("success") == 4 and CURRENT.message_type("error") == 5
    assert CURRENT.label("token") == 19 and PRE_26.label("token") == 20
    assert CURRENT.err_code("ERR_MANIFEST_PROCESSING_FAILED") == 11
    assert PRE_26.err_code("ERR_MANIFEST_PROCESSING_FAILED") == 17


def test_unknown_numbering_name_is_refused():
    with pytest.raises(ValueError, match="draft-26"):
        numbering_by_name("draft-99")
