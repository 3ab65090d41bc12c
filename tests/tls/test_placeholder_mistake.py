"""The classic keytool mistake, made with keytool: the CA-signed certificate imported under a NEW
alias (a trustedCertEntry), leaving -genkeypair's self-signed placeholder as the key's chain.
``inspect`` names the entry and the commands; running those exact commands fixes the store; a run
refuses the store with the same explanation."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from flowrun._cli import main
from flowrun._errors import PlaceholderCertError
from flowrun._tls._read import load_keystore_file, select_identity
from tests._keytool import make_ca, run_keytool

PASSWORD = "placeholder-pw"

pytestmark = pytest.mark.keytool


@pytest.mark.parametrize("storetype", ["JKS", "PKCS12"])
def test_inspect_names_the_entry_and_its_commands_fix_the_store(storetype: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_ca(tmp_path / "ca", "Placeholder Root")
    inter = root.issue_intermediate("Placeholder Intermediate")
    store = tmp_path / ("client.jks" if storetype == "JKS" else "client.p12")
    common = ["-keystore", str(store), "-storetype", storetype, "-storepass", PASSWORD]
    keypass = ["-keypass", PASSWORD] if storetype == "JKS" else []
    run_keytool("-genkeypair", "-alias", "client", "-keyalg", "EC", "-groupname", "secp256r1",
                "-dname", "CN=bank-client,O=Flowrun Test", *keypass, *common)
    csr = run_keytool("-certreq", "-alias", "client", *common).stdout.encode()
    signed = tmp_path / "signed.pem"
    signed.write_bytes(inter.sign_csr(csr).public_bytes(Encoding.PEM))
    run_keytool("-importcert", "-noprompt", "-alias", "root", "-file", str(root.cert_path), *common)
    run_keytool("-importcert", "-noprompt", "-trustcacerts", "-alias", "intermediate", "-file",
                str(inter.cert_path), *common)
    # The mistake: a new alias, so keytool stores the reply as a trustedCertEntry.
    run_keytool("-importcert", "-noprompt", "-alias", "bank-signed", "-file", str(signed), *common)
    store.chmod(0o600)
    monkeypatch.setenv("PH_PW", PASSWORD)

    code = main(["keystore", "inspect", str(store), "--password-env", "PH_PW", "--json"])
    assert code == 1
    findings = {f["code"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "chain.self_signed" not in findings
    message = findings["chain.placeholder"]["message"]
    assert "trustedCertEntry 'bank-signed'" in message
    assert "CN=bank-client" in message

    with pytest.raises(PlaceholderCertError) as raised:
        select_identity(load_keystore_file(store, password=PASSWORD), key_alias=None, key_password=None,
                        store_password=PASSWORD)
    assert "trustedCertEntry 'bank-signed'" in raised.value.message

    # Run the commands exactly as the finding gives them (plus the password keytool would prompt for).
    commands = re.search(r"Fix: (.*?) \(the root", message)
    assert commands is not None
    monkeypatch.chdir(tmp_path)  # the commands write signed.crt in the current folder
    for command in commands.group(1).split("; "):
        argv = shlex.split(command)
        assert argv[0] == "keytool"
        run_keytool(*argv[1:], "-storepass", PASSWORD, "-noprompt")
    code = main(["keystore", "inspect", str(store), "--password-env", "PH_PW", "--json"])
    findings = {f["code"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert code == 0, findings
    assert "chain of 3 up to root" in findings["identity.summary"]["message"]


def test_a_run_refuses_the_store_and_points_at_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_ca(tmp_path / "ca", "Placeholder Root")
    store = tmp_path / "client.p12"
    common = ["-keystore", str(store), "-storetype", "PKCS12", "-storepass", PASSWORD]
    run_keytool("-genkeypair", "-alias", "client", "-keyalg", "EC", "-groupname", "secp256r1",
                "-dname", "CN=bank-client", *common)
    csr = run_keytool("-certreq", "-alias", "client", *common).stdout.encode()
    signed = tmp_path / "signed.pem"
    signed.write_bytes(root.sign_csr(csr).public_bytes(Encoding.PEM))
    run_keytool("-importcert", "-noprompt", "-alias", "signed", "-file", str(signed), *common)
    store.chmod(0o600)
    monkeypatch.setenv("PH_PW", PASSWORD)
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    (aliases / "bank.json").write_text(json.dumps([
        {"kind": "keystore", "name": "bank_client", "file": str(store), "password": {"env": "PH_PW"}},
        {"kind": "protocol_profile", "name": "bankMTLS", "keystore": "bank_client"},
        {"kind": "alias", "name": "bank", "connection": {"url": "https://127.0.0.1:9/", "mutual_authentication": True,
                                                          "protocol_profile": "bankMTLS"}},
    ]))
    assert main(["alias", "test", "bank", "--aliases", str(aliases)]) == 2
    err = capsys.readouterr().err
    assert "error[keystore.placeholder_cert]" in err
    assert "trustedCertEntry 'signed'" in err and "keytool -importcert -trustcacerts -alias client" in err
