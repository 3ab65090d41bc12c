"""A client certificate that has expired, or expires within two weeks, is reported on every
resolution of fresh key material (logger ``flowrun``), without stopping the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from flowrun._registry import Registry
from flowrun.testing import issue_client, make_pki, write_client_files
from tests.transport._support import PASSWORD, make_registry


def _registry_for(tmp_path: Path, **client_options: object) -> Registry:
    pki = make_pki()
    files = pki.write(tmp_path / "pki", keystore_password=PASSWORD)
    client = issue_client(pki, **client_options)  # type: ignore[arg-type]
    written = write_client_files(client, tmp_path / "client", password=PASSWORD)
    return make_registry(files, "https://localhost:1", keystore=written.pkcs12)


@pytest.mark.parametrize(("options", "expected"), [
    ({"expired": True}, "expired on"),
    ({"days": 5}, "expires on"),
])
def test_expiring_or_expired_client_certificate_is_warned_about(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, options: dict[str, object], expected: str) -> None:
    registry = _registry_for(tmp_path, **options)
    with caplog.at_level(logging.WARNING, logger="flowrun"):
        registry.resolve("partner")
        registry.resolve("partner")  # the same key material: no second warning
    messages = [r.getMessage() for r in caplog.records if "client certificate" in r.getMessage()]
    assert len(messages) == 1, messages
    assert expected in messages[0] and "keystore 'client'" in messages[0]
    assert PASSWORD not in messages[0]


def test_certificate_valid_for_long_is_not_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = _registry_for(tmp_path, days=365)
    with caplog.at_level(logging.WARNING, logger="flowrun"):
        registry.resolve("partner")
    assert not [r for r in caplog.records if "client certificate" in r.getMessage()]
