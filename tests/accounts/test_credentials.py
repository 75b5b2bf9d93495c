from __future__ import annotations

import pytest

from tollway.accounts.credentials import CredentialBox, CredentialError

UPSTREAM_KEY = "sk-proj-Xy9_upstream-credential-0123456789"


def test_round_trip() -> None:
    box = CredentialBox("secret-one")
    token = box.encrypt(UPSTREAM_KEY)
    assert box.decrypt(token) == UPSTREAM_KEY


def test_ciphertext_hides_the_credential_and_is_text() -> None:
    token = CredentialBox("secret-one").encrypt(UPSTREAM_KEY)
    assert isinstance(token, str)
    assert UPSTREAM_KEY not in token
    assert "upstream-credential" not in token
    token.encode("ascii")  # storable in any text column


def test_each_encryption_differs_but_both_decrypt() -> None:
    box = CredentialBox("secret-one")
    first, second = box.encrypt(UPSTREAM_KEY), box.encrypt(UPSTREAM_KEY)
    assert first != second
    assert box.decrypt(first) == box.decrypt(second) == UPSTREAM_KEY


def test_same_secret_in_another_process_decrypts() -> None:
    # A fresh box from the same secret (another worker, a restart) opens old ciphertext.
    token = CredentialBox("shared secret with spaces ✓").encrypt(UPSTREAM_KEY)
    assert CredentialBox("shared secret with spaces ✓").decrypt(token) == UPSTREAM_KEY


def test_any_length_secret_works() -> None:
    for secret in ("x", "a" * 10_000, "0123456789abcdef0123456789abcdef"):
        box = CredentialBox(secret)
        assert box.decrypt(box.encrypt("v")) == "v"


def test_unicode_and_empty_credentials() -> None:
    box = CredentialBox("s")
    assert box.decrypt(box.encrypt("密钥-κλειδί")) == "密钥-κλειδί"
    assert box.decrypt(box.encrypt("")) == ""


def test_wrong_secret_is_a_clear_error_without_the_credential() -> None:
    token = CredentialBox("secret-one").encrypt(UPSTREAM_KEY)
    with pytest.raises(CredentialError, match="secret key differs") as info:
        CredentialBox("secret-two").decrypt(token)
    assert UPSTREAM_KEY not in str(info.value)
    assert "secret-one" not in str(info.value) and "secret-two" not in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("token", ["", "not-a-token", "gAAAAA", "Zm9v"])
def test_garbage_ciphertext_is_a_credential_error(token: str) -> None:
    with pytest.raises(CredentialError):
        CredentialBox("secret-one").decrypt(token)


def test_tampered_ciphertext_is_refused() -> None:
    box = CredentialBox("secret-one")
    token = box.encrypt(UPSTREAM_KEY)
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    with pytest.raises(CredentialError):
        box.decrypt(tampered)


def test_no_secret_key_is_refused_with_the_fix() -> None:
    with pytest.raises(CredentialError, match="TOLLWAY_SECRET_KEY"):
        CredentialBox("")


def test_the_box_does_not_show_its_key() -> None:
    box = CredentialBox("very-private-secret")
    assert "very-private-secret" not in repr(box)
    assert "very-private-secret" not in str(box)
