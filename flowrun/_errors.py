"""Every exception flowrun raises, in one tree.

::

    FlowrunError                          exit 2 unless noted
    ├── UsageError                        bad command line
    │   └── OptionNeedsExtraError         an option needs an optional extra that is not installed
    ├── DefinitionError                   a file the user wrote is wrong (file + JSON pointer + line)
    │   ├── JsonSyntaxError
    │   ├── SchemaError                   unknown field, wrong type, missing field, bad value
    │   ├── DuplicateNameError
    │   ├── UnknownReferenceError         with "did you mean"
    │   ├── SecretUnavailableError        {"env": ...} unset, {"file": ...} unreadable
    │   ├── SecretFormatError             a secret holds a line break (it cannot go into a header)
    │   ├── SoapPortError                 a SOAP step's service/port unknown, or several ports fit
    │   ├── SoapVersionError              the soap_version asked for has no port in the WSDL
    │   ├── SoapOperationError            the operation is not in the chosen binding
    │   ├── MissingExtraError             a feature needs an optional extra that is not installed
    │   ├── SoapArgumentError             an arg unknown to the operation, a required one missing,
    │   │                                 or a value that does not fit its XSD type (names the element)
    │   └── ImportSourceError             `flowrun import`: a collection, curl line or spec that cannot be read
    │       ├── ImportUnsupportedError    ... uses something flowrun has no equivalent for
    │       └── ImportOutputError         ... would give files flowrun's own loader refuses
    ├── KeyMaterialError                  a keystore or trust store cert cannot be used
    │   ├── KeystoreNotFoundError         missing file, a directory, unreadable
    │   ├── KeystoreFormatError           empty, unknown format, type given does not match content
    │   ├── KeystoreCorruptError          truncated or damaged content
    │   ├── KeystorePasswordError         wrong store password
    │   ├── KeyPasswordError              wrong key password
    │   ├── KeyAliasError                 key_alias missing, or several keys and none chosen
    │   ├── NoPrivateKeyError             only trusted certificates (the trustedCertEntry gotcha)
    │   ├── KeyMismatchError              private key does not belong to the leaf certificate
    │   ├── IncompleteChainError
    │   ├── PlaceholderCertError          the signed certificate sits in a trustedCertEntry, not on the key
    │   ├── KeyUnusableError              OpenSSL will not use the key or chain for TLS
    │   │   ├── KeyTooSmallError          under OpenSSL's security level (EE_KEY_TOO_SMALL)
    │   │   └── KeyAlgorithmError         RSA-PSS, DSA with TLS 1.3, a curve TLS does not sign with
    │   ├── KeyEncryptionUnsupportedError a key protected with an algorithm that cannot be read
    │   └── TrustCertError                a trust store cert file cannot be read
    ├── DataPillError                     {{ expression }} invalid or names a missing value
    │   └── PathOutsideBaseError          a rendered path leaves the alias's base path
    ├── RunInterruptedError               exit 130: SIGINT or SIGTERM stopped the run mid-step
    ├── BrokerError                       the Celery broker or result backend cannot be reached (flowrun.celery)
    └── StepFailure                       exit 1: a step ran and failed
        ├── TransportError
        │   ├── ConnectRefusedError
        │   ├── HostNotFoundError         the host name does not resolve (DNS)
        │   ├── RequestTimeoutError
        │   ├── ConnectionLostError       reset / closed mid-exchange
        │   ├── ProtocolError             the server broke HTTP
    │   ├── ProxyUnreachableError     the proxy cannot be reached
    │   ├── ProxyAuthRequiredError    the proxy answers CONNECT with 407
    │   ├── ProxyRefusedError         the proxy refuses the tunnel (403, other 4xx)
    │   ├── ProxyUpstreamError        the proxy cannot reach the partner (5xx to CONNECT)
        │   └── TlsError                  never retried
        │       ├── ServerCertUntrustedError
    │       │   └── TlsInterceptedError   a proxy presents its own certificate instead of the partner's
        │       ├── HostnameMismatchError
        │       ├── ClientCertRejectedError
        │       ├── ClientCertNotSentError
        │       ├── ClientCertExpiredError
        │       ├── ProtocolVersionError
        │       ├── PlainHttpPortError
        │       └── RenegotiationRefusedError a TLS 1.2 partner asked to renegotiate mid-exchange
        ├── AuthenticationError           the token endpoint refused our client credentials
        ├── RedirectRefusedError          https->http downgrade, too many redirects
        ├── UnexpectedStatusError
        ├── ResponseTooLargeError
        ├── ResponseParseError
        │   └── SoapReplyError            a SOAP reply does not fit the WSDL (names the element)
        ├── UnsafeXmlError
        ├── SoapFaultError
        ├── WsdlError                     a WSDL or its schemas cannot be fetched or used
        │   └── WsdlNotFetchedError       a remote WSDL or schema, which offline checks do not fetch
        ├── CaptureError
        │   └── OutputNotFoundError       an output expression matches nothing
        ├── AssertionFailedError
        ├── BodyFileChangedError          a file body changed size while it was sent
        ├── PaginationError               a page's items are not an array
        │   ├── NextPageRefusedError      a next-page URL leaves the alias's origin
        │   └── PageLimitError            more pages than paginate.max_pages
        ├── OutcomeUnknownError           a redelivered task finds a non-idempotent request was in flight
        ├── InFlightWaitError             no slot under the alias's concurrency_limit within its wait_s
        ├── LimitStoreError               the Redis that holds the shared rate and concurrency limits failed
        └── InternalError                 an unexpected exception, kept as a step error

Each class has a stable ``code`` (shown to users and written to reports), an exit code, and a
default hint saying what to do. Messages never contain secrets: callers pass names of secrets
(the env variable, the file), never their values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypedDict


class Location(TypedDict, total=False):
    """Keyword arguments that place an error: ``raise SchemaError(msg, **origin.location())``."""

    file: str | Path | None
    pointer: str | None
    line: int | None


class FlowrunError(Exception):
    """Base of every flowrun error. ``str(err)`` is one line: location, then message."""

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 2
    default_hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        file: str | Path | None = None,
        pointer: str | None = None,
        line: int | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        self.file = str(file) if file is not None else None
        self.pointer = pointer
        self.line = line
        self.step = step

    @property
    def location(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.line}" if self.line is not None else self.file)
        if self.pointer:
            parts.append(f"at {self.pointer}")
        if self.step is not None:
            parts.append(f"step '{self.step}'")
        return " ".join(parts)

    def __str__(self) -> str:
        where = self.location
        return f"{where}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {str(self)!r})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.hint:
            data["hint"] = self.hint
        for key in ("file", "pointer", "line", "step"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


class UsageError(FlowrunError):
    code = "usage"


class OptionNeedsExtraError(UsageError):
    """An option (``--otel``) needs packages of an optional extra (``flowrun[otel]``) not installed."""

    code = "usage.missing_extra"


# --- definitions -------------------------------------------------------------------------


class DefinitionError(FlowrunError):
    code = "definition"


class JsonSyntaxError(DefinitionError):
    code = "definition.json_syntax"
    default_hint = "fix the JSON syntax at the line shown (a missing comma or quote is the usual cause)"


class SchemaError(DefinitionError):
    code = "definition.schema"
    default_hint = "see `flowrun schema` for the fields each record accepts"


class DuplicateNameError(DefinitionError):
    code = "definition.duplicate_name"
    default_hint = "names are unique per kind across the whole alias directory: rename one of them"


class UnknownReferenceError(DefinitionError):
    code = "definition.unknown_reference"


class SecretUnavailableError(DefinitionError):
    code = "definition.secret_unavailable"


class SecretFormatError(DefinitionError):
    code = "definition.secret_format"
    default_hint = "strip the line break where the secret is stored (a file written with echo, a CRLF .env file)"
class SoapPortError(DefinitionError):
    code = "definition.soap_port"
    default_hint = "name the service and port of the WSDL in the step's 'service' and 'port'"

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # The step field at fault ("service" or "port"); None: the step as a whole (several ports fit).
        self.field = field


class SoapVersionError(DefinitionError):
    code = "definition.soap_version"
    default_hint = "set soap_version to a version the WSDL has a port for, or leave it out"


class SoapOperationError(DefinitionError):
    code = "definition.soap_operation"
    default_hint = "operation names are the WSDL's, case included"


class ImportSourceError(DefinitionError):
    code = "import.source"
    default_hint = "check the file at the JSON pointer shown (export it again from the tool that made it)"


class ImportUnsupportedError(ImportSourceError):
    code = "import.unsupported"
    default_hint = "remove the option or part shown, or write that part of the step by hand (docs/import.md)"


class ImportOutputError(ImportSourceError):
    code = "import.invalid_output"
    default_hint = "nothing was written; the source holds something flowrun cannot express as shown"


# --- key material -------------------------------------------------------------------------


class KeyMaterialError(FlowrunError):
    code = "keystore"


class KeystoreNotFoundError(KeyMaterialError):
    code = "keystore.not_found"
    default_hint = "check the path; relative paths are resolved from the file that names them"


class KeystoreFormatError(KeyMaterialError):
    code = "keystore.format"
    default_hint = "flowrun reads JKS, JCEKS, PKCS12 (.p12/.pfx) and PEM; check the file is one of them"


class KeystoreCorruptError(KeyMaterialError):
    code = "keystore.corrupt"
    default_hint = "the file is truncated or damaged: copy it again in binary mode, or export it again"


class KeystorePasswordError(KeyMaterialError):
    code = "keystore.wrong_password"
    default_hint = "check the store password (keytool -list -keystore FILE asks for the same one)"


class KeyPasswordError(KeyMaterialError):
    code = "keystore.wrong_key_password"
    default_hint = "the key has its own password: set key_password (keytool's -keypass)"


class KeyAliasError(KeyMaterialError):
    code = "keystore.key_alias"


class NoPrivateKeyError(KeyMaterialError):
    code = "keystore.no_private_key"
    default_hint = (
        "the store holds only trusted certificates; import the signed certificate under the alias "
        "of the key pair made by keytool -genkeypair, so that the entry is a PrivateKeyEntry"
    )


class KeyMismatchError(KeyMaterialError):
    code = "keystore.key_mismatch"
    default_hint = "import the certificate signed for this key's CSR under the key's alias"


class IncompleteChainError(KeyMaterialError):
    code = "keystore.incomplete_chain"
    default_hint = (
        "import root and intermediate with keytool -importcert -trustcacerts, "
        "then the signed certificate under the key's alias"
    )


class PlaceholderCertError(KeyMaterialError):
    code = "keystore.placeholder_cert"
    default_hint = (
        "export the signed certificate from the trustedCertEntry, delete that entry, and import the "
        "certificate under the key's alias (keytool -importcert -alias <key alias>)"
    )


class KeyUnusableError(KeyMaterialError):
    code = "keystore.key_unusable"
    default_hint = (
        "make a new key pair (keytool -genkeypair -keyalg RSA -keysize 3072, or -keyalg EC -groupname "
        "secp256r1), have it certified, and import the signed certificate under the key's alias"
    )


class KeyTooSmallError(KeyUnusableError):
    code = "keystore.key_too_small"


class KeyAlgorithmError(KeyUnusableError):
    code = "keystore.key_algorithm"


class KeyEncryptionUnsupportedError(KeyMaterialError):
    code = "keystore.key_encryption_unsupported"
    default_hint = (
        "re-encrypt the key with a current algorithm: openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW "
        "(or export the store again with keytool)"
    )


class TrustCertError(KeyMaterialError):
    code = "trust_cert.unreadable"
    default_hint = "a trust store cert is a PEM file (one or several certificates) or a DER file"


# --- evaluation ---------------------------------------------------------------------------


class MissingExtraError(DefinitionError):
    """A definition uses a feature whose library is an optional extra (``flowrun[aws]``)."""

    code = "definition.missing_extra"
    default_hint = "install the optional extra the message names"


class SoapArgumentError(DefinitionError):
    code = "definition.soap_argument"
    default_hint = "give the value in the XSD type's form (xs:decimal: 1234.50, xs:int: 42, xs:boolean: true)"


class DataPillError(FlowrunError):
    code = "data_pill"
    default_hint = "a data pill reads inputs.*, steps.<id>.* or env.* (declared in the flow)"


class PathOutsideBaseError(DataPillError):
    code = "data_pill.path_outside_base"
    default_hint = ("a step's path stays under the alias's base path: a data pill value is one path segment, "
                    "and '..' may not climb above the base path")


# --- interruption -------------------------------------------------------------------------


class RunInterruptedError(FlowrunError):
    """The step that was running when a signal (SIGINT, SIGTERM) stopped the run: reports mark
    it with this error instead of losing it. The command itself exits 128 + the signal number."""

    code = "interrupted"
    exit_code = 130
    default_hint = "the run was stopped before this step finished; steps after it did not run"


class BrokerError(FlowrunError):
    """``flowrun run --broker`` / ``flowrun worker``: the broker or its result store cannot be
    reached, or went away during the run (the report keeps the rows gathered before)."""

    code = "broker.unavailable"
    default_hint = "check that the broker (e.g. redis-server) runs and that the URL is right"


# --- step failures ------------------------------------------------------------------------


class StepFailure(FlowrunError):
    code = "step"
    exit_code = 1


class TransportError(StepFailure):
    code = "transport"


class ConnectRefusedError(TransportError):
    code = "transport.connect_refused"
    default_hint = "nothing listens on that host and port: check host, port and the port rule of the alias"


class HostNotFoundError(TransportError):
    code = "transport.host_not_found"
    default_hint = (
        "the host name does not resolve: check the alias's host for a typo, and this machine's DNS or "
        "/etc/hosts; to reach a copy of the partner at another address use --connect-to"
    )


class RequestTimeoutError(TransportError):
    code = "transport.timeout"
    default_hint = "the partner did not answer in time: raise timeout_s or check the network path"


class ConnectionLostError(TransportError):
    code = "transport.connection_lost"
    default_hint = "the partner closed the connection mid-exchange"


class ProtocolError(TransportError):
    code = "transport.protocol"
    default_hint = "the partner's reply is not valid HTTP"


class ProxyUnreachableError(TransportError):
    code = "transport.proxy_unreachable"
    default_hint = ("check the proxy's host and port (HTTPS_PROXY / HTTP_PROXY, or the connection's proxy); hosts "
                    "reached without the proxy go into NO_PROXY")


class ProxyAuthRequiredError(TransportError):
    code = "transport.proxy_auth_required"
    default_hint = ('give the connection a proxy with "username" and "password" ({"env": ...} or {"file": ...}), '
                    "or put them into the proxy variable (http://user:password@proxy:port)")


class ProxyRefusedError(TransportError):
    code = "transport.proxy_refused"
    default_hint = ("the proxy does not let us open a tunnel to this host and port: ask its administrators to allow "
                    "it (tinyproxy: ConnectPort; squid: the CONNECT and SSL_ports rules), or reach the host "
                    "without the proxy (NO_PROXY, or \"proxy\": \"none\" on the connection)")


class ProxyUpstreamError(TransportError):
    code = "transport.proxy_upstream"
    default_hint = "the proxy could not reach the partner: check the alias's host and port from the proxy's side"


class TlsError(TransportError):
    code = "tls"


class ServerCertUntrustedError(TlsError):
    code = "tls.server_untrusted"
    default_hint = "add the partner's root (or its certificate) as a trust_store_cert on the protocol profile"


class TlsInterceptedError(ServerCertUntrustedError):
    code = "tls.intercepted_by_proxy"
    default_hint = (
        "ask the proxy's administrators to exempt this host from TLS inspection (mutual TLS cannot work through "
        "it: the partner would see the proxy, not our certificate); if the issuer named is in fact the partner's "
        "CA, add its root as a trust_store_cert"
    )


class HostnameMismatchError(TlsError):
    code = "tls.hostname_mismatch"
    default_hint = "connect with a host name that the partner's certificate lists in its subjectAltName"


class ClientCertRejectedError(TlsError):
    code = "tls.client_cert_rejected"
    default_hint = (
        "the partner does not trust our certificate: send them the chain (keystore inspect shows it) "
        "and check the keystore holds root and intermediate"
    )


class ClientCertNotSentError(TlsError):
    code = "tls.client_cert_not_sent"
    default_hint = "the partner requires a client certificate: enable mutual_authentication with a protocol profile"


class ClientCertExpiredError(TlsError):
    code = "tls.client_cert_expired"
    default_hint = "renew the client certificate and import it under the key's alias"


class ProtocolVersionError(TlsError):
    code = "tls.protocol_version"
    default_hint = "the two sides share no TLS version: check tls_versions on the protocol profile"


class PlainHttpPortError(TlsError):
    code = "tls.plain_http_port"
    default_hint = "the port speaks plain HTTP: use the partner's HTTPS port or an http:// URL"


class RenegotiationRefusedError(TlsError):
    code = "tls.renegotiation_refused"
    default_hint = (
        "the partner asked to renegotiate TLS on an open connection (servers do it to ask for a client "
        "certificate on some paths only); flowrun never renegotiates: ask the partner to request the client "
        "certificate in the first handshake, or to offer TLS 1.3"
    )


class AuthenticationError(StepFailure):
    """The credential could not be turned into a request credential (e.g. the OAuth2 token
    endpoint refused us). Carries the endpoint's ``error``/``error_description``, never a secret."""

    code = "auth"
    default_hint = "check client_id, client_secret, scope and token_url of the credential"


class RedirectRefusedError(StepFailure):
    code = "http.redirect_refused"
    default_hint = "point the alias or the step at the final URL, or raise max_redirects"


class UnexpectedStatusError(StepFailure):
    code = "http.unexpected_status"
    default_hint = "the status is not in expect_status"

    def __init__(self, message: str, *, status: int | None = None, body_excerpt: str | None = None,
                 content_type: str | None = None, headers: tuple[tuple[str, str], ...] = (),
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.body_excerpt = body_excerpt
        self.content_type = content_type
        self.headers = headers

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["http_status"] = self.status
        data["content_type"] = self.content_type
        data["body_excerpt"] = self.body_excerpt
        return data


class ResponseTooLargeError(StepFailure):
    code = "http.response_too_large"
    default_hint = "raise response.max_bytes on the step, or stream the body to a file with response.save_to"


class ResponseParseError(StepFailure):
    code = "http.response_parse"


class SoapReplyError(ResponseParseError):
    code = "soap.reply"
    default_hint = ("the partner's reply does not fit its WSDL; \"strict\": false on the step accepts extra and "
                    "reordered elements, a raw envelope step without wsdl reads every value as text")


class UnsafeXmlError(StepFailure):
    code = "xml.unsafe"
    default_hint = "DTDs and entities are refused in WSDLs, schemas and responses"


class SoapFaultError(StepFailure):
    code = "soap.fault"

    def __init__(self, message: str, *, faultcode: str | None = None, faultstring: str | None = None,
                 detail: Any = None, actor: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.detail = detail
        self.actor = actor

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["fault"] = {"code": self.faultcode, "string": self.faultstring, "actor": self.actor,
                         "detail": self.detail}
        return data


class WsdlError(StepFailure):
    code = "soap.wsdl"
    default_hint = (
        "check the step's wsdl location and that the WSDL and its schemas are valid; a partner whose "
        "WSDL is broken can still be called with a raw envelope step"
    )


class WsdlNotFetchedError(WsdlError):
    code = "soap.wsdl_not_fetched"
    default_hint = "`flowrun validate` reads local WSDLs only; the step's WSDL is checked when it runs"


class CaptureError(StepFailure):
    code = "capture"


class OutputNotFoundError(CaptureError):
    code = "capture.no_match"
    default_hint = ('fix the expression (flowrun run --show-body prints the parsed body), or mark the output '
                    'optional: {"expr": "...", "optional": true}, or give a default: "body.x || \'none\'"')


class AssertionFailedError(StepFailure):
    code = "assertion"

    def __init__(self, message: str, *, expression: str | None = None, expected: Any = None,
                 actual: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.expression = expression
        self.expected = expected
        self.actual = actual


class BodyFileChangedError(StepFailure):
    code = "request.body_file_changed"
    default_hint = "the file to upload was written to while it was sent: upload a finished file"


class PaginationError(StepFailure):
    code = "http.pagination"
    default_hint = "paginate.items is JMESPath over {status, headers, body} of each page and must give an array"


class NextPageRefusedError(PaginationError):
    code = "http.pagination.origin"
    default_hint = ("a next page is fetched only from the alias's origin or its trusted_origins; "
                    "add the partner's other origin to trusted_origins if it is really theirs")


class PageLimitError(PaginationError):
    code = "http.pagination.max_pages"
    default_hint = "raise paginate.max_pages if the list really is that long"
class OutcomeUnknownError(StepFailure):
    """A worker died while this non-idempotent request (POST, PATCH, SOAP without an idempotency key)
    was in flight: it may or may not have reached the partner, so the redelivered task does not send
    it again."""

    code = "delivery.outcome_unknown"
    default_hint = ("check with the partner whether the request arrived before sending it again; give the step "
                    "an Idempotency-Key header so that a redelivered task may re-send it safely")


class InFlightWaitError(StepFailure):
    """The alias's ``concurrency_limit.max_in_flight`` requests stayed in flight for the whole
    ``wait_s``: the request was not sent."""

    code = "limit.in_flight_wait"
    default_hint = ("the partner is slower than the runs that use it: raise concurrency_limit.wait_s, run fewer "
                    "flows or workers at once, or agree a higher max_in_flight with the partner")


class LimitStoreError(StepFailure):
    """A Celery worker could not reach the Redis that holds the shared rate and concurrency limits;
    the request was not sent (going past a partner's limit is worse than failing the step)."""

    code = "limit.store_unavailable"
    default_hint = "check that the Redis of the workers' result backend runs; the step was not sent"


class InternalError(StepFailure):
    """An exception flowrun did not expect: the step fails with it instead of the run crashing."""

    code = "internal"
    default_hint = ("this is a flowrun defect: please report it with the message (run again with -v for "
                    "the traceback)")
    # The traceback, shown only by -v (never in reports: it may quote partner data).
    details: str = ""


__all__ = [name for name, value in list(globals().items())
           if isinstance(value, type) and issubclass(value, FlowrunError)]
