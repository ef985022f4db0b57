"""messages.encode() decoding its own output: on under the test suite and DEBUG, off in
production, where it would double encode()'s cost on every policy check (issue 11)."""

import dataclasses

import pytest
from django.apps import apps
from django.test import override_settings

from apps.teep.wire import messages
from apps.teep.wire.messages import Success, TeepDecodeError, TeepEncodeError

TOKEN = b"\x01" * 16


@pytest.fixture
def broken_token_encoder(monkeypatch):
    """Success's token written as 3 bytes: TEEP 4 wants 8 to 64, so decode() refuses it."""
    spec = messages._SPEC_BY_CLASS[Success]
    options = tuple(
        dataclasses.replace(option, to_wire=lambda value, numbering: b"abc")
        if option.name == "token"
        else option
        for option in spec.options
    )
    broken = dataclasses.replace(spec, options=options)
    monkeypatch.setitem(messages._SPEC_BY_CLASS, Success, broken)


def test_self_check_is_on_under_the_test_suite():
    assert messages.ENCODE_SELF_CHECK is True


def test_a_broken_encoder_is_caught(broken_token_encoder):
    with pytest.raises(TeepEncodeError) as caught:
        messages.encode(Success(token=TOKEN))
    assert caught.value.field == "options.token"


def test_without_the_self_check_the_broken_output_goes_out(broken_token_encoder, monkeypatch):
    """What the flag buys: the same broken encoder, unchecked, produces bytes we would refuse."""
    monkeypatch.setattr(messages, "ENCODE_SELF_CHECK", False)
    data = messages.encode(Success(token=TOKEN))
    with pytest.raises(TeepDecodeError):
        messages.decode(data)


@pytest.mark.parametrize(
    "testing, debug, expected",
    [(True, False, True), (False, True, True), (False, False, False)],
    ids=["tests", "debug", "production"],
)
def test_the_teep_app_sets_the_flag_from_the_settings(monkeypatch, testing, debug, expected):
    monkeypatch.setattr(messages, "ENCODE_SELF_CHECK", not expected)
    with override_settings(TESTING=testing, DEBUG=debug):
        apps.get_app_config("teep").ready()
    assert messages.ENCODE_SELF_CHECK is expected
