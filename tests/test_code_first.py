"""Registry.from_records and SecretSource: a registry built in code, secrets from the service's store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flowrun import (
    Alias,
    Connection,
    Credential,
    DuplicateNameError,
    Keystore,
    ProtocolProfile,
    Registry,
    RestExecutor,
    RestStep,
    SecretRef,
    SecretSource,
    SecretUnavailableError,
    TrustStoreCert,
)
from flowrun.testing import PartnerServer, Pki, PkiFiles, make_pki

README = Path(__file__).resolve().parents[1] / "README.md"
P12_PASSWORD = "p12-secret-value"
API_KEY = "api-key-secret-value"


class DictSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get_secret(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


class BrokenStore:
    def get_secret(self, name: str) -> str | None:
        raise ConnectionError(f"vault unreachable while reading {name}")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=P12_PASSWORD)


def records(files: PkiFiles, url: str, *, source: str = "vault") -> list[object]:
    return [
        Keystore("client", files.client.pkcs12, type="pkcs12", password=SecretRef.from_source(source, "bank/p12")),
        TrustStoreCert("root", file=files.root_pem),
        ProtocolProfile("bankMTLS", keystore="client", trust_store_certs=("root",), use_system_trust=False),
        Credential("key", "api_key", header="X-API-Key", key=SecretRef.from_source(source, "bank/api_key")),
        Alias("bank", Connection(url=f"{url}/v2", mutual_authentication=True, protocol_profile="bankMTLS",
                                 credential="key")),
    ]


def test_the_readme_python_section_builds_a_registry_in_code_and_runs_a_step() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    code_first = [block for block in blocks if "Registry.from_records" in block]
    assert len(code_first) == 1
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code_first[0], "README.md", "exec"), namespace)
    assert isinstance(namespace["vault"], SecretSource)


def test_secrets_come_from_the_source_at_use_and_never_show(pki: Pki, files: PkiFiles,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    store = DictSecrets({"bank/p12": P12_PASSWORD, "bank/api_key": API_KEY})
    with PartnerServer(pki, api_keys={API_KEY}) as partner:
        registry = Registry.from_records(records(files, partner.url), secrets=store)  # one source for all
        with RestExecutor(registry) as rest:
            result = rest.run(RestStep(alias="bank", path="/accounts/42")).raise_for_failure()
        assert result.http_status == 200
        assert partner.requests[-1].header("X-API-Key") == API_KEY
    assert sorted(set(store.asked)) == ["bank/api_key", "bank/p12"]
    shown = repr(registry.records) + repr(result) + json.dumps(result.to_dict(), default=str)
    assert P12_PASSWORD not in shown and API_KEY not in shown


def test_every_secret_goes_through_reveal_secret(files: PkiFiles) -> None:
    seen: list[str] = []

    class Watching(Registry):
        def reveal_secret(self, secret: SecretRef) -> str:
            value = super().reveal_secret(secret)
            seen.append(secret.describe())
            return value

    registry = Watching.from_records(records(files, "https://localhost:1"),
                                     secrets={"vault": DictSecrets({"bank/p12": P12_PASSWORD,
                                                                    "bank/api_key": API_KEY})})
    registry.identity("client")
    assert registry.records.credentials["key"].key is not None
    assert registry.records.credentials["key"].key.reveal() == API_KEY
    assert seen == ["secret 'bank/p12' of source 'vault'", "secret 'bank/api_key' of source 'vault'"]


def test_missing_source_secret_and_failing_source_are_named(files: PkiFiles) -> None:
    unconfigured = Registry.from_records(records(files, "https://localhost:1", source="aws"),
                                         secrets={"vault": DictSecrets({})})
    with pytest.raises(SecretUnavailableError, match="no secret source named 'aws'"):
        unconfigured.identity("client")
    empty = Registry.from_records(records(files, "https://localhost:1"), secrets={"vault": DictSecrets({})})
    with pytest.raises(SecretUnavailableError, match="secret 'bank/p12' of source 'vault' does not exist"):
        empty.identity("client")
    broken = Registry.from_records(records(files, "https://localhost:1"), secrets=BrokenStore())
    with pytest.raises(SecretUnavailableError, match=r"the secret source failed \(ConnectionError\)") as raised:
        broken.identity("client")
    assert "bank/p12" in str(raised.value)


def test_from_records_cross_checks_like_an_alias_directory(files: PkiFiles) -> None:
    built = records(files, "https://localhost:1")
    with pytest.raises(DuplicateNameError, match="alias 'bank' is defined twice"):
        Registry.from_records([*built, built[-1]])
    with pytest.raises(Exception, match="keystore 'nope', which is not defined"):
        Registry.from_records([ProtocolProfile("p", keystore="nope")])
    with pytest.raises(TypeError, match="not an alias record: dict"):
        Registry.from_records([{"kind": "alias"}])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="no get_secret"):
        Registry.from_records(built, secrets={"vault": {"bank/p12": "x"}})  # type: ignore[dict-item]


def test_an_alias_file_names_a_source_secret(tmp_path: Path, files: PkiFiles) -> None:
    directory = tmp_path / "aliases"
    directory.mkdir()
    (directory / "bank.json").write_text(json.dumps([
        {"kind": "keystore", "name": "client", "type": "pkcs12", "file": str(files.client.pkcs12),
         "password": {"source": "vault", "name": "bank/p12"}},
    ]))
    registry = Registry.load(directory, secrets={"vault": DictSecrets({"bank/p12": P12_PASSWORD})})
    assert registry.identity("client").chain


def test_the_constructor_takes_a_list_of_records_too(files: PkiFiles) -> None:
    built = records(files, "https://localhost:1")
    registry = Registry(built, secrets={"vault": DictSecrets({"bank/p12": P12_PASSWORD})})  # type: ignore[arg-type]
    assert registry.alias_names() == ["bank"]
    assert registry.identity("client").chain
