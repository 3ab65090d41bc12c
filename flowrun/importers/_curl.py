"""A curl command line -> a step definition, a flow that runs it, and the alias records.

The line is split with ``shlex`` (as a POSIX shell would). Secrets on the line (``-u``'s
password, a bearer or API key header, ``--pass``, ``--cert FILE:PASSWORD``) are never copied:
the records name environment variables, listed in the result. ``-k``/``--insecure`` is refused:
flowrun only skips verification on a protocol profile, loudly, and the fix is ``--cacert``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flowrun._errors import ImportSourceError, ImportUnsupportedError
from flowrun._models._redact import is_credential_header
from flowrun.importers._common import AliasBook, ImportResult, env_name, slug

__all__ = ["import_curl"]

# Options taking a value: canonical long name by every spelling.
_VALUED = {
    "-X": "request", "--request": "request", "-H": "header", "--header": "header",
    "-d": "data", "--data": "data", "--data-ascii": "data", "--data-raw": "data-raw",
    "--data-binary": "data-binary", "--data-urlencode": "data-urlencode", "--json": "json",
    "-F": "form", "--form": "form", "--form-string": "form-string", "-u": "user", "--user": "user",
    "-E": "cert", "--cert": "cert", "--cert-type": "cert-type", "--key": "key", "--key-type": "key-type",
    "--pass": "pass", "--cacert": "cacert", "--url": "url", "-A": "user-agent", "--user-agent": "user-agent",
    "-e": "referer", "--referer": "referer", "-b": "cookie", "--cookie": "cookie", "-m": "max-time",
    "--max-time": "max-time", "--connect-timeout": "connect-timeout", "--oauth2-bearer": "oauth2-bearer",
    "--max-redirs": "max-redirs", "-o": "output", "--output": "output", "-w": "write-out", "--write-out": "write-out",
}
_FLAGS = {
    "-G": "get", "--get": "get", "-I": "head", "--head": "head", "-L": "location", "--location": "location",
    "--compressed": "compressed", "-s": "quiet", "--silent": "quiet", "-S": "quiet", "--show-error": "quiet",
    "-v": "quiet", "--verbose": "quiet", "-i": "quiet", "--include": "quiet", "-f": "fail", "--fail": "fail",
    "--fail-with-body": "fail", "-k": "insecure", "--insecure": "insecure", "--http1.1": "quiet",
    "-N": "quiet", "--no-buffer": "quiet", "--tlsv1.2": "tls12", "--tlsv1.3": "tls13", "-#": "quiet",
    "--progress-bar": "quiet",
}


def import_curl(command: str, *, name: str | None = None, out: Path | None = None,
                cwd: Path | None = None) -> ImportResult:
    try:
        words = shlex.split(command.replace("\\\r\n", " ").replace("\\\n", " "))
    except ValueError as error:
        raise ImportSourceError(f"the command line cannot be split: {error}",
                                hint="quote the whole curl command as one argument, in single quotes") from None
    if words and words[0] == "curl":
        words = words[1:]
    try:
        return _Builder(_parse(words), name, out or Path(), cwd or Path.cwd()).build()
    except ImportSourceError as error:
        if error.hint == ImportSourceError.default_hint:
            error.hint = "check the curl command line (docs/import.md lists the options imported)"
        raise


def _parse(words: list[str]) -> list[tuple[str, str | None, int]]:
    """(option, value, position) in order; the URL as ("url", ...)."""
    parsed: list[tuple[str, str | None, int]] = []
    index = 0
    while index < len(words):
        word = words[index]
        position = index + 1
        if word.startswith("--") and "=" in word and word.split("=", 1)[0] in _VALUED:
            spelled, value = word.split("=", 1)
            parsed.append((_VALUED[spelled], value, position))
        elif word in _VALUED:
            if index + 1 >= len(words):
                raise ImportSourceError(f"curl option {word} (word {position}) needs a value")
            parsed.append((_VALUED[word], words[index + 1], position))
            index += 1
        elif word in _FLAGS:
            parsed.append((_FLAGS[word], None, position))
        elif re.fullmatch(r"-[A-Za-z#]{2,}", word) and all(f"-{c}" in _FLAGS or f"-{c}" in _VALUED for c in word[1:]):
            # Bundled short options (-sSL, -XPOST, -HAccept:...): a valued letter takes the rest.
            for offset, letter in enumerate(word[1:], start=1):
                short = f"-{letter}"
                if short in _VALUED:
                    rest = word[offset + 1:]
                    if not rest:
                        if index + 1 >= len(words):
                            raise ImportSourceError(f"curl option {short} (word {position}) needs a value")
                        rest = words[index + 1]
                        index += 1
                    parsed.append((_VALUED[short], rest, position))
                    break
                parsed.append((_FLAGS[short], None, position))
        elif re.fullmatch(r"-[A-Za-z]\S+", word) and word[:2] in _VALUED:
            parsed.append((_VALUED[word[:2]], word[2:], position))
        elif word.startswith("-") and word != "-":
            raise ImportUnsupportedError(
                f"curl option {word} (word {position}) is not supported by flowrun import",
                hint="supported: -X -H -d --data-* --data-urlencode --json -F -u --cert --cert-type --key --pass "
                "--cacert -G -I -L --compressed -A -e -m --connect-timeout --oauth2-bearer (docs/import.md)")
        else:
            parsed.append(("url", word, position))
        index += 1
    return parsed


class _Builder:
    def __init__(self, options: list[tuple[str, str | None, int]], name: str | None, out: Path, cwd: Path) -> None:
        self.options = options
        self.out = out
        self.cwd = cwd
        self.result = ImportResult(source="curl command line")
        urls = [value for option, value, _ in options if option == "url"]
        if len(urls) != 1 or urls[0] is None:
            raise ImportSourceError(f"the command needs exactly one URL ({len(urls)} given)",
                                    hint="curl 'https://api.example/path' ...")
        url = urls[0] if "://" in urls[0] else "https://" + urls[0]
        self.parts = urlsplit(url)
        try:
            self.parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise ImportSourceError(f"URL {_shown(url)!r}: the port is not a number from 0 to 65535") from None
        if self.parts.scheme not in ("http", "https") or not self.parts.hostname:
            raise ImportUnsupportedError(f"URL {_shown(url)!r}: only http and https URLs with a host are imported")
        self.name = slug(name or f"{self.parts.hostname}{self.parts.path}", fallback="request")
        self.host = slug(self.parts.hostname.split(".")[0] if not self.parts.hostname[0].isdigit()
                         else self.parts.hostname, fallback="partner")
        self.env_prefix = self.host

    def _values(self, option: str) -> list[str]:
        return [value for name, value, _ in self.options if name == option and value is not None]

    def _has(self, option: str) -> bool:
        return any(name == option for name, _, _ in self.options)

    def _file(self, path: str, base: Path) -> str:
        """``path`` (relative to the command's directory) as seen from ``base`` under ``out``."""
        target = Path(path).expanduser()
        if not target.is_absolute():
            target = self.cwd / target
        return os.path.relpath(target, base.resolve())

    def build(self) -> ImportResult:
        if self._has("insecure"):
            raise ImportUnsupportedError(
                "-k/--insecure is refused: flowrun verifies the partner's certificate",
                hint="give the partner's CA with --cacert FILE (it becomes a trust store cert); skipping "
                "verification is only possible on a protocol profile (insecure_skip_verify), reported loudly")
        step: dict[str, Any] = {"description": "Imported from a curl command line", "type": "rest"}
        headers: list[list[str]] = []
        credential: dict[str, Any] | None = None
        for header in self._values("header"):
            key, sep, value = header.partition(":")
            if not sep:
                raise ImportSourceError(f"-H {header.split(':')[0][:40]!r}: a header is 'Name: value'")
            key, value = key.strip(), value.strip()
            if not value:
                continue  # curl's way of removing a header
            bearer = re.fullmatch(r"(?i)bearer\s+(\S+)", value)
            if key.lower() == "authorization" and bearer and credential is None:
                credential = {"type": "bearer", "token": self._secret("TOKEN", "the bearer token of the command")}
            elif key.lower() == "authorization" and re.match(r"(?i)basic\s", value) and credential is None:
                raise ImportUnsupportedError("an 'Authorization: Basic ...' header: give the user with -u instead",
                                             hint="curl -u USER ...: the password becomes an environment variable")
            elif is_credential_header(key) and credential is None and key.lower() != "cookie":
                credential = {"type": "api_key", "header": key,
                              "key": self._secret("API_KEY", f"the value of the {key} header of the command")}
            elif is_credential_header(key):
                raise ImportUnsupportedError(f"the {key} header carries a credential that flowrun sends from an alias "
                                             "credential, and the command has one already",
                                             hint="keep one credential per command")
            else:
                headers.append([key, value])
        for option, header in (("user-agent", "User-Agent"), ("referer", "Referer")):
            for value in self._values(option):
                headers.append([header, value])
        if self._values("cookie"):
            raise ImportUnsupportedError("-b/--cookie: cookies carry sessions; flowrun does not import them",
                                         hint="send the cookie with a credential or a header in the step by hand")
        if self._values("oauth2-bearer"):
            credential = {"type": "bearer", "token": self._secret("TOKEN", "the bearer token of the command")}
        for user in self._values("user"):
            username, has_password, _ = user.partition(":")
            credential = {"type": "basic", "username": username,
                          "password": self._secret("PASSWORD", f"the password of user {username!r}" + (
                              "" if has_password else " (the command let curl ask for it)"))}
        if self._has("compressed"):
            self.result.notes.append("--compressed: flowrun always accepts and decodes gzip and deflate answers")
        body, query_extra = self._body(headers)
        method = self._method(body is not None or bool(query_extra))
        if self._has("get") and body is not None:
            raise ImportSourceError("-G with a body that is not form data")
        step["method"] = method
        step["path"] = self.parts.path or "/"
        query = [[k, v] for k, v in parse_qsl(self.parts.query, keep_blank_values=True)] + query_extra
        if query:
            step["query"] = query
        if headers:
            step["headers"] = headers
        if body is not None:
            step["body"] = body
        if self._has("location"):
            step["follow_redirects"] = True
        for value in self._values("max-time"):
            step["timeout_s"] = _seconds(value, "-m/--max-time")
        if self._has("fail"):
            self.result.notes.append("-f/--fail: a flowrun step fails on any status outside 2xx already")
        extra: dict[str, Any] = {}
        for value in self._values("connect-timeout"):
            extra["connect_timeout_s"] = _seconds(value, "--connect-timeout")
        base_url = f"{self.parts.scheme}://{self.parts.netloc.rsplit('@', 1)[-1]}"
        if "@" in self.parts.netloc:
            raise ImportUnsupportedError("a user name or password in the URL: give it with -u USER instead")
        step["alias"] = AliasBook(self.result).alias(
            base_url, hint=self.parts.hostname or self.host, credential=credential, mtls=self._mtls(),
            extra_connection=extra or None)
        order = ["description", "type", "alias", "method", "path", "query", "headers", "body", "follow_redirects",
                 "timeout_s"]
        self.result.files[f"steps/{self.name}.json"] = {k: step[k] for k in order if k in step}
        self.result.files[f"flows/{self.name}.json"] = {
            "name": self.name, "description": "Runs the step imported from a curl command line",
            "steps": [{"id": self.name, "uses": f"../steps/{self.name}.json"}]}
        return self.result

    def _secret(self, what: str, why: str) -> dict[str, str]:
        return self.result.need_env(env_name(self.env_prefix, what), why)

    def _method(self, has_data: bool) -> str:
        requested = self._values("request")
        if requested:
            method = requested[-1].upper()
        elif self._has("head"):
            method = "HEAD"
        elif self._has("get"):
            method = "GET"
        else:
            method = "POST" if has_data else "GET"
        if method not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
            raise ImportUnsupportedError(f"-X {method}: flowrun sends GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
        return method

    def _body(self, headers: list[list[str]]) -> tuple[dict[str, Any] | None, list[list[str]]]:
        data_parts: list[str] = []
        urlencoded_only = True
        file_body: str | None = None
        for option, value, position in self.options:
            if value is None:
                continue
            if option in ("data", "data-binary") and value.startswith("@"):
                file_body = value[1:]
            elif option in ("data", "data-raw", "data-binary", "json"):
                data_parts.append(value)
                if option == "json":
                    urlencoded_only = False
                    headers.append(["Content-Type", "application/json"])
                    headers.append(["Accept", "application/json"])
            elif option == "data-urlencode":
                data_parts.append(_urlencode_part(value, position))
        forms = [(o, v) for o, v, _ in self.options if o in ("form", "form-string") and v is not None]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        if forms:
            if data_parts or file_body:
                raise ImportSourceError("-F cannot be combined with -d/--data (curl refuses it too)")
            return self._multipart(forms), []
        if file_body is not None:
            if data_parts:
                raise ImportUnsupportedError("a body from @file together with other -d parts")
            return {"file": self._file(file_body, self.out / "steps"), "content_type": content_type
                    or "application/x-www-form-urlencoded"}, []
        if not data_parts:
            return None, []
        joined = "&".join(data_parts)
        if self._has("get"):
            return None, [[k, v] for k, v in parse_qsl(joined, keep_blank_values=True)]
        if content_type and "json" in content_type.lower():
            try:
                return {"json": json.loads(joined)}, []
            except ValueError:
                pass
        if content_type is None and urlencoded_only and re.fullmatch(r"[^=&\s]+=[^&]*(&[^=&\s]+=[^&]*)*", joined):
            form: dict[str, Any] = {}
            for key, value in parse_qsl(joined, keep_blank_values=True):
                form[key] = [*form[key], value] if isinstance(form.get(key), list) else (
                    [form[key], value] if key in form else value)
            return {"form": form}, []
        return {"text": joined, "content_type": content_type or "application/x-www-form-urlencoded"}, []

    def _multipart(self, forms: list[tuple[str, str]]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        files: dict[str, Any] = {}
        for option, spec in forms:
            key, sep, value = spec.partition("=")
            if not sep:
                raise ImportSourceError(f"-F {spec[:40]!r}: a form field is 'name=value' or 'name=@file'")
            if option == "form" and value.startswith("@"):
                path, *attributes = value[1:].split(";")
                part: dict[str, Any] = {"path": self._file(path, self.out / "steps")}
                for attribute in attributes:
                    attr, _, attr_value = attribute.partition("=")
                    if attr.strip() == "type":
                        part["content_type"] = attr_value.strip()
                    elif attr.strip() == "filename":
                        part["filename"] = attr_value.strip().strip('"')
                files[key] = part if len(part) > 1 else part["path"]
            elif option == "form" and value.startswith("<"):
                raise ImportUnsupportedError(f"-F {key}=<file (a field read from a file) is not supported",
                                             hint="paste the value, or send the file as a file part with @")
            else:
                fields[key] = value
        result: dict[str, Any] = {"multipart": fields}
        if files:
            result["files"] = files
        return result

    def _mtls(self) -> dict[str, Any] | None:
        certs = self._values("cert")
        cacerts = self._values("cacert")
        if not certs and not cacerts:
            if self._tls_versions():
                self.result.notes.append("--tlsv1.x: flowrun offers TLS 1.2 and 1.3 unless a protocol profile says "
                                         "otherwise; without --cert or --cacert there is none")
            return None
        if self.parts.scheme != "https":
            raise ImportUnsupportedError(f"{'--cert' if certs else '--cacert'} with an http:// URL: "
                                         "certificates need https")
        base = self.out / "aliases"
        port = self.parts.port or 443
        if not certs:
            # curl --cacert replaces the CA bundle: a trust-only profile trusting exactly that file.
            return {"trust": [{"format": "pem", "file": self._file(c, base)} for c in cacerts],
                    "profile": {"use_system_trust": False, "port": port, **self._tls_versions()}}
        cert = certs[-1]
        cert_type = (self._values("cert-type") or ["PEM"])[-1].upper()
        password_given = bool(self._values("pass"))
        file, password = _split_cert(cert)
        if password is not None:
            password_given = True
        keystore: dict[str, Any]
        if cert_type in ("P12", "PKCS12"):
            keystore = {"type": "pkcs12", "file": self._file(file, base)}
        elif cert_type == "PEM":
            keystore = {"type": "pem", "file": self._file(file, base)}
            keys = self._values("key")
            if keys:
                keystore["key_file"] = self._file(keys[-1], base)
            if (self._values("key-type") or ["PEM"])[-1].upper() != "PEM":
                raise ImportUnsupportedError("--key-type other than PEM", hint="convert the key to PEM with openssl")
        else:
            raise ImportUnsupportedError(f"--cert-type {cert_type}: PEM and P12 are imported",
                                         hint="convert the certificate to PEM or PKCS12 with openssl")
        if password_given:
            keystore["password"] = self._secret("KEYSTORE_PASSWORD", "the password of the client key (--pass or "
                                                "--cert FILE:PASSWORD)")
        mtls: dict[str, Any] = {"keystore": keystore}
        if cacerts:
            mtls["trust"] = [{"format": "pem", "file": self._file(c, base)} for c in cacerts]
            # curl --cacert replaces the CA bundle: trust exactly that, as curl does.
            mtls["profile"] = {"use_system_trust": False}
        mtls.setdefault("profile", {}).update(port=port, **self._tls_versions())
        return mtls

    def _tls_versions(self) -> dict[str, list[str]]:
        """curl's --tlsv1.2 means "1.2 or later", --tlsv1.3 "1.3 only"."""
        if self._has("tls13"):
            return {"tls_versions": ["1.3"]}
        if self._has("tls12"):
            return {"tls_versions": ["1.2", "1.3"]}
        return {}


def _shown(url: str) -> str:
    """A URL for a message: no user information (it may hold a password), no query, cut short."""
    return re.sub(r"(//)[^/@]*@", r"\1", url.split("?", 1)[0])[:80]


def _split_cert(value: str) -> tuple[str, str | None]:
    """curl's ``--cert FILE[:PASSWORD]`` (a ``\\:`` is a colon in the file name)."""
    match = re.fullmatch(r"((?:[^:\\]|\\.)*)(?::(.*))?", value, re.S)
    assert match is not None
    return match[1].replace("\\:", ":"), match[2]


def _urlencode_part(value: str, position: int) -> str:
    from urllib.parse import quote_plus

    if value.startswith("@") or (re.match(r"[^=]*@", value.split("=", 1)[0]) and "=" not in value):
        raise ImportUnsupportedError(f"--data-urlencode (word {position}) reading a file is not supported",
                                     hint="paste the content")
    name, sep, content = value.partition("=")
    if not sep:
        return quote_plus(value)
    return f"{name}={quote_plus(content)}" if name else quote_plus(content)


def _seconds(value: str, option: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ImportSourceError(f"{option} {value[:20]!r}: not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise ImportUnsupportedError(f"{option} {value}: flowrun takes 0 to 3600 seconds")
    return seconds
