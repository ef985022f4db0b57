"""Encryption at rest (DESIGN.md "Keys"): AES-256-GCM, keys from files, rotation."""

import base64
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.personalization import at_rest

from .conftest import write_key


def test_round_trip_with_associated_data():
    sealed = at_rest.seal(b"secret config", b"row 1")
    assert sealed.key_id == at_rest.data_keys()[0].key_id
    assert len(sealed.nonce) == 12 and b"secret config" not in sealed.ciphertext
    assert at_rest.open_sealed(sealed, b"row 1") == b"secret config"


def test_other_associated_data_does_not_decrypt():
    sealed = at_rest.seal(b"secret config", b"row 1")
    with pytest.raises(at_rest.AtRestError, match="not authentic"):
        at_rest.open_sealed(sealed, b"row 2")


def test_every_seal_has_a_fresh_nonce():
    first, second = at_rest.seal(b"x", b"a"), at_rest.seal(b"x", b"a")
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext


def test_raw_32_byte_key_file_is_accepted(settings, tmp_path):
    raw = bytes(range(32))
    (tmp_path / "raw.key").write_bytes(raw)
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(tmp_path / "raw.key")]
    assert at_rest.data_keys()[0].key == raw


@pytest.mark.parametrize("content", [b"too short", base64.b64encode(b"x" * 31)])
def test_key_file_of_the_wrong_size_is_refused(settings, tmp_path, content):
    (tmp_path / "bad.key").write_bytes(content)
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(tmp_path / "bad.key")]
    with pytest.raises(ImproperlyConfigured):
        at_rest.data_keys()


def test_missing_key_file_is_refused(settings, tmp_path):
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(tmp_path / "absent.key")]
    with pytest.raises(ImproperlyConfigured, match="absent.key"):
        at_rest.data_keys()


def test_development_key_is_created_once_in_the_key_dir(settings, tmp_path):
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = []
    settings.TAM_GENERATE_DEVELOPMENT_KEYS = True
    settings.TAM_KEY_DIR = tmp_path / "keys"
    key = at_rest.data_keys()[0]
    path = tmp_path / "keys" / at_rest.DEVELOPMENT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_bytes()) == key.key
    at_rest.data_keys.cache_clear()
    assert at_rest.data_keys()[0] == key


def test_no_key_and_no_development_keys_is_refused(settings):
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = []
    settings.TAM_GENERATE_DEVELOPMENT_KEYS = False
    with pytest.raises(ImproperlyConfigured, match="TAM_DATA_ENCRYPTION_KEY_FILE"):
        at_rest.data_keys()


def test_rotation_new_key_encrypts_old_key_still_decrypts(settings, tmp_path, data_key_file):
    old = at_rest.seal(b"sealed under the old key", b"aad")
    new_file = tmp_path / "data-key-2.b64"
    write_key(new_file)
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(new_file), str(data_key_file)]
    new = at_rest.seal(b"sealed under the new key", b"aad")
    assert new.key_id != old.key_id
    assert at_rest.open_sealed(old, b"aad") == b"sealed under the old key"
    assert at_rest.open_sealed(new, b"aad") == b"sealed under the new key"
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(new_file)]  # old key retired
    with pytest.raises(at_rest.AtRestError, match=old.key_id):
        at_rest.open_sealed(old, b"aad")


def test_key_is_never_in_its_repr():
    key = at_rest.data_keys()[0]
    assert key.key.hex() not in repr(key) and str(key.key) not in repr(key)
