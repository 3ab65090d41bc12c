"""A JKS identity keeps its key as the unencrypted PKCS#8 DER once OpenSSL has paired it with the
leaf (flowrun/_tls/_model.py ClientIdentity), and a key OpenSSL does not pair is worded as for
every other store."""

from __future__ import annotations

import ssl

import pytest

from flowrun._errors import KeyMismatchError
from flowrun._tls import _jks
from flowrun._tls._context import build_ssl_context
from flowrun._tls._jks import encode_jks
from flowrun._tls._read import read_keystore, select_identity
from tests._keytool import CA, new_ec_key, new_rsa_key


def test_a_jks_key_is_kept_as_pkcs8_and_decoded_when_asked(test_root_ca: CA, test_intermediate_ca: CA) -> None:
    key = new_rsa_key()
    leaf = test_intermediate_ca.issue_leaf(key.public_key(), "client")
    data = encode_jks(alias="client", private_key=key, chain=[leaf, test_intermediate_ca.cert, test_root_ca.cert],
                      password="changeit")

    identity = select_identity(read_keystore(data, password="changeit", type="jks"), key_alias="client",
                               key_password=None, store_password="changeit")

    assert identity.key is None and identity.pkcs8 is not None
    assert identity.chain == (leaf, test_intermediate_ca.cert, test_root_ca.cert)
    context = build_ssl_context(identity, [test_root_ca.cert])
    assert isinstance(context, ssl.SSLContext)
    assert identity.private_key.public_key() == key.public_key()  # decoded on demand, once
    assert identity.private_key is identity.private_key


def test_a_jks_key_of_another_certificate_is_named_with_the_certificate(
        monkeypatch: pytest.MonkeyPatch, test_intermediate_ca: CA) -> None:
    leaf = test_intermediate_ca.issue_leaf(new_ec_key().public_key(), "someone-else")
    with monkeypatch.context() as patch:  # encode_jks refuses such a store: write it anyway
        patch.setattr(_jks, "public_key_der", lambda key: b"")
        data = encode_jks(alias="client", private_key=new_ec_key(), chain=[leaf], password="changeit")
    contents = read_keystore(data, password="changeit", type="jks")

    with pytest.raises(KeyMismatchError, match=r"private key of entry 'client' does not belong to its "
                                               r"certificate .*someone-else"):
        select_identity(contents, key_alias="client", key_password=None, store_password="changeit")
