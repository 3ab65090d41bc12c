"""OpenAPI 3.0 / 3.1 -> one step definition per operation, a flow per operation that runs it,
and alias records from ``servers`` and ``securitySchemes``.

Parameters (path, query, header) become the definition's inputs; a JSON request body becomes
the input ``body`` whose default is the document's example, else a skeleton built from the
schema. ``mutualTLS`` becomes a protocol profile and a keystore record whose file and password
the user fills in. YAML documents need PyYAML (``pip install 'flowrun[yaml]'``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flowrun._errors import ImportSourceError, ImportUnsupportedError
from flowrun.importers._common import AliasBook, ImportResult, env_name, identifier, record_name, slug, unique

__all__ = ["import_openapi"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_TYPES = {"string", "number", "integer", "boolean", "object", "array"}


def import_openapi(path: Path, *, out: Path | None = None) -> ImportResult:
    document = _read(path)
    if not isinstance(document, dict):
        raise ImportSourceError("an OpenAPI document is an object", file=path, pointer="")
    version = str(document.get("openapi", ""))
    if "swagger" in document:
        raise ImportUnsupportedError(f"Swagger {document['swagger']} is not supported: OpenAPI 3.0 and 3.1 are",
                                     file=path, pointer="/swagger",
                                     hint="convert the document to OpenAPI 3 (most editors and converters do)")
    if not re.match(r"3\.[01]\.", version):
        raise ImportUnsupportedError(f"OpenAPI version {version or '(none given)'} is not supported: 3.0 and 3.1 are",
                                     file=path, pointer="/openapi")
    if not isinstance(document.get("paths", {}), dict):
        raise ImportSourceError("'paths' must be an object", file=path, pointer="/paths")
    importer = _Importer(path, document)
    try:
        return importer.run()
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as error:
        # A shape the specification does not allow (null where an object belongs...): name the place.
        text = str(error)[:80]
        raise ImportSourceError(f"unexpected content in this part of the document ({type(error).__name__}"
                                f"{': ' + text if text else ''})", file=path, pointer=importer.where or "/") from None


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ImportSourceError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}", file=path,
                                hint="check the path (relative paths start from the working directory)") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise ImportSourceError(f"not JSON: {error}", file=path, line=getattr(error, "lineno", None)) from None
    try:
        import yaml
    except ImportError:
        raise ImportUnsupportedError(
            "reading a YAML document needs PyYAML, which is not installed",
            file=path, hint="pip install 'flowrun[yaml]' (or convert the document to JSON)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ImportSourceError(f"not YAML: {getattr(error, 'problem', error)}", file=path,
                                line=mark.line + 1 if mark is not None else None) from None


class _Importer:
    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = path
        self.doc = document
        info = document.get("info")
        self.title = str((info if isinstance(info, dict) else {}).get("title") or path.stem)
        self.prefix = slug(self.title, fallback="api")
        self.result = ImportResult(source=str(path))
        self.aliases = AliasBook(self.result)
        self.step_names: set[str] = set()
        self.where = "/servers"
        self.environments: dict[str, str] | None = None

    def ref(self, value: Any, pointer: str, depth: int = 0) -> Any:
        """``value`` with a local ``$ref`` followed (others are refused with their place)."""
        while isinstance(value, dict) and "$ref" in value:
            target = str(value["$ref"])
            if not target.startswith("#/"):
                raise ImportUnsupportedError(f"reference {target[:80]!r} points outside the document",
                                             file=self.path, pointer=pointer,
                                             hint="bundle the document into one file first")
            node: Any = self.doc
            for raw_part in target[2:].split("/"):
                part = raw_part.replace("~1", "/").replace("~0", "~")
                if not isinstance(node, dict) or part not in node:
                    raise ImportSourceError(f"reference {target!r} names nothing in the document", file=self.path,
                                            pointer=pointer)
                node = node[part]
            value = node
            depth += 1
            if depth > 50:
                raise ImportSourceError(f"reference {target!r} loops", file=self.path, pointer=pointer)
        return value

    def run(self) -> ImportResult:
        base_url, server_extra = self._server()
        default_security = self.doc.get("security")
        count = 0
        for route, raw_item in (self.doc.get("paths") or {}).items():
            item_pointer = "/paths/" + str(route).replace("~", "~0").replace("/", "~1")
            self.where = item_pointer
            item = self.ref(raw_item, item_pointer)
            if not isinstance(item, dict):
                raise ImportSourceError("a path item is an object", file=self.path, pointer=item_pointer)
            for method in _METHODS:
                if method in item:
                    pointer = f"{item_pointer}/{method}"
                    self.where = pointer
                    operation = self.ref(item[method], pointer)
                    security = operation.get("security", default_security)
                    alias = self._alias(base_url, security, pointer, server_extra)
                    self._operation(str(route), method, operation, item.get("parameters") or [], alias, pointer)
                    count += 1
        if count == 0:
            raise ImportSourceError("the document has no operations", file=self.path, pointer="/paths")
        return self.result

    # --- servers and security ------------------------------------------------------------------

    def _server(self) -> tuple[str, str]:
        """The first server's base URL and host; with several servers, ``self.environments``
        holds one base URL per server (an alias connection per environment)."""
        servers = self.doc.get("servers") or [{"url": "/"}]
        if not isinstance(servers, list):
            raise ImportSourceError("'servers' must be a list", file=self.path, pointer="/servers")
        urls: dict[str, str] = {}
        for index, server in enumerate(servers):
            if not isinstance(server, dict):
                raise ImportSourceError("a server is an object with 'url'", file=self.path, pointer=f"/servers/{index}")
            url = self._server_url(server, index)
            if url is None:
                if index > 0:
                    self.result.notes.append(f"server {server.get('url')!r} is relative: left out")
                continue
            label = record_name(str(server.get("description") or f"server{index + 1}")).lower()
            urls[unique(label, set(urls))] = url
        if not urls:
            self.result.notes.append(f"the server URL {servers[0].get('url')!r} is relative: the alias points at "
                                     "https://partner.invalid; set its url")
            urls["server1"] = "https://partner.invalid" + "/" + str(servers[0].get("url") or "").strip("/")
        first = next(iter(urls.values())).rstrip("/")
        if len(urls) > 1:
            self.environments = {env: url.rstrip("/") for env, url in urls.items()}
            self.result.notes.append(f"one connection per server: environments {', '.join(urls)} (choose with "
                                     f"--env; the default is {next(iter(urls))})")
        return first, urlsplit(first).hostname or "partner"

    def _server_url(self, server: dict[str, Any], index: int) -> str | None:
        url = str(server.get("url") or "/")
        variables = server.get("variables") or {}
        if not isinstance(variables, dict):
            raise ImportSourceError("server variables are an object", file=self.path,
                                    pointer=f"/servers/{index}/variables")
        for name, variable in variables.items():
            default = variable.get("default") if isinstance(variable, dict) else None
            if default is None:
                raise ImportSourceError(f"server variable {name!r} has no default", file=self.path,
                                        pointer=f"/servers/{index}/variables/{name}")
            url = url.replace("{" + str(name) + "}", str(default))
            if isinstance(variable, dict) and variable.get("enum"):
                note = (f"server variable {name!r} took its default {default!r} "
                        f"(also allowed: {', '.join(map(str, variable['enum']))})")
                if note not in self.result.notes:
                    self.result.notes.append(note)
        if not re.match(r"https?://", url):
            return None
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    def _alias(self, base_url: str, security: Any, pointer: str, host: str) -> str:
        schemes = (self.doc.get("components") or {}).get("securitySchemes") or {}
        requirement: dict[str, Any] = {}
        if isinstance(security, list) and security:
            requirement = security[0] if isinstance(security[0], dict) else {}
            if len(security) > 1:
                note = ("operations with several security alternatives use the first one "
                        f"({', '.join(requirement) or 'none'})")
                if note not in self.result.notes:
                    self.result.notes.append(note)
        credential: dict[str, Any] | None = None
        mtls: dict[str, Any] | None = None
        hint = record_name(host.split(".", maxsplit=1)[0] if not host[:1].isdigit() else self.prefix)
        for name in requirement:
            scheme = self.ref(schemes.get(name), f"/components/securitySchemes/{name}")
            where = f"/components/securitySchemes/{name}"
            if not isinstance(scheme, dict):
                raise ImportSourceError(f"security scheme {name!r} is not defined", file=self.path,
                                        pointer=pointer + "/security")
            kind = scheme.get("type")
            prefix = env_name(self.prefix, name)
            if kind == "mutualTLS":
                mtls = {"keystore": {"type": "pkcs12", "file": f"../keystores/{slug(name)}.p12",
                                     "password": self.result.need_env(f"{prefix}_KEYSTORE_PASSWORD",
                                                                      "the password of the client keystore")}}
                note = (f"security scheme {name!r} is mutual TLS: put the client keystore (PKCS12) at "
                        f"keystores/{slug(name)}.p12 next to aliases/, or change the keystore record "
                        f"(type, file, key_alias), and add the partner's CA as a trust_store_cert if needed")
                if note not in self.result.notes:
                    self.result.notes.append(note)
                hint = f"{hint}_{slug(name)}" if requirement and name != next(iter(requirement)) else hint
                continue
            if credential is not None:
                raise ImportUnsupportedError(f"an operation needs two credentials at once ({', '.join(requirement)})",
                                             file=self.path, pointer=pointer + "/security",
                                             hint="an alias has one credential: pick one scheme")
            credential = self._credential(scheme, name, prefix, where)
        if requirement:
            first = next(iter(requirement))
            default = self._default_scheme()
            if first != default:
                hint = f"{hint}_{slug(first)}"
        environments = self.environments
        if environments and mtls is not None:
            # Mutual TLS needs https: plain-http servers are left out of this alias.
            kept = {env: url for env, url in environments.items() if url.startswith("https://")}
            environments = kept if len(kept) > 1 else None
            base_url = next(iter(kept.values()), base_url)
        return self.aliases.alias(base_url, hint=hint, credential=credential, mtls=mtls, environments=environments)

    def _default_scheme(self) -> str | None:
        security = self.doc.get("security")
        if isinstance(security, list) and security and isinstance(security[0], dict) and security[0]:
            return str(next(iter(security[0])))
        return None

    def _credential(self, scheme: dict[str, Any], name: str, prefix: str, where: str) -> dict[str, Any] | None:
        kind = scheme.get("type")
        if kind == "http" and str(scheme.get("scheme", "")).lower() == "basic":
            self.result.notes.append(f"security scheme {name!r}: set the user name in the credential record "
                                     "(it is written as USERNAME)")
            return {"type": "basic", "username": "USERNAME",
                    "password": self.result.need_env(f"{prefix}_PASSWORD", f"the password ({name})")}
        if kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            return {"type": "bearer", "token": self.result.need_env(f"{prefix}_TOKEN", f"the bearer token ({name})")}
        if kind == "apiKey" and scheme.get("in") in ("header", "query"):
            return {"type": "api_key", str(scheme["in"]): str(scheme.get("name") or "X-API-Key"),
                    "key": self.result.need_env(f"{prefix}_API_KEY", f"the API key ({name})")}
        if kind == "oauth2" and isinstance((scheme.get("flows") or {}).get("clientCredentials"), dict):
            flow = scheme["flows"]["clientCredentials"]
            if not str(flow.get("tokenUrl") or "").startswith("https://"):
                self.result.notes.append(f"security scheme {name!r}: the token URL is not https (flowrun sends client "
                                         f"secrets over https only): the alias sends no credential ({where})")
                return None
            credential: dict[str, Any] = {
                "type": "oauth2_client_credentials", "token_url": str(flow.get("tokenUrl") or ""),
                "client_id": "CLIENT_ID",
                "client_secret": self.result.need_env(f"{prefix}_CLIENT_SECRET", f"the OAuth client secret ({name})")}
            if flow.get("scopes"):
                credential["scope"] = " ".join(map(str, flow["scopes"]))
            self.result.notes.append(f"security scheme {name!r}: set client_id in the credential record (written as "
                                     "CLIENT_ID)")
            return credential
        self.result.notes.append(f"security scheme {name!r} ({kind}, {scheme.get('in') or scheme.get('scheme') or ''})"
                                 f" has no flowrun credential: the alias sends none ({where})")
        return None

    # --- operations ----------------------------------------------------------------------------

    def _operation(self, route: str, method: str, operation: dict[str, Any], shared: list[Any], alias: str,
                   pointer: str) -> None:
        op_id = str(operation.get("operationId") or f"{method}_{route}")
        name = unique(slug(op_id, fallback="operation"), self.step_names)
        inputs: dict[str, Any] = {}
        query: dict[str, str] = {}
        headers: dict[str, str] = {}
        parameters: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for source, items in (("path item", shared), ("operation", operation.get("parameters") or [])):
            base = pointer.rsplit("/", 1)[0] if source == "path item" else pointer
            for index, raw in enumerate(items):
                here = f"{base}/parameters/{index}"
                parameter = self.ref(raw, here)
                if not isinstance(parameter, dict) or "name" not in parameter or "in" not in parameter:
                    raise ImportSourceError("a parameter needs 'name' and 'in'", file=self.path, pointer=here)
                parameters[(str(parameter["name"]), str(parameter["in"]))] = (parameter, here)
        path = route
        for (pname, location), (parameter, here) in parameters.items():
            input_name = unique(identifier(pname), set(inputs))
            spec = self._input(parameter, here)
            pill = f"{{{{ inputs.{input_name} }}}}"
            if location == "path":
                spec.pop("required", None)
                path = path.replace("{" + pname + "}", pill)
            elif location == "query":
                query[pname] = pill
            elif location == "header":
                headers[pname] = pill
            else:
                self.result.notes.append(f"{here}: {location} parameter {pname!r} is not sent (flowrun sends path, "
                                         "query and header parameters)")
                continue
            inputs[input_name] = spec
        step: dict[str, Any] = {"description": self._describe(operation, method, route), "type": "rest",
                                "alias": alias, "method": method.upper(), "path": path}
        if query:
            step["query"] = query
        if headers:
            step["headers"] = headers
        body = operation.get("requestBody")
        if body is not None:
            step["body"] = self._body(self.ref(body, pointer + "/requestBody"), pointer + "/requestBody", inputs)
            if step["body"] is None:
                del step["body"]
        if inputs:
            step["inputs"] = inputs
        self.result.files[f"steps/{self.prefix}/{name}.json"] = step
        flow_inputs = {k: {key: v for key, v in spec.items() if key != "description"} | (
            {"description": spec["description"]} if "description" in spec else {}) for k, spec in inputs.items()}
        flow: dict[str, Any] = {"name": f"{self.prefix}.{name}",
                                "description": f"Runs {op_id} ({method.upper()} {route})"}
        if flow_inputs:
            flow["inputs"] = flow_inputs
        entry: dict[str, Any] = {"id": identifier(name), "uses": f"../../steps/{self.prefix}/{name}.json"}
        if inputs:
            entry["with"] = {k: f"{{{{ inputs.{k} }}}}" for k in inputs}
        flow["steps"] = [entry]
        self.result.files[f"flows/{self.prefix}/{name}.json"] = flow

    def _describe(self, operation: dict[str, Any], method: str, route: str) -> str:
        parts = [f"{method.upper()} {route}"]
        for key in ("summary", "description"):
            if operation.get(key):
                parts.append(str(operation[key]))
        return "\n\n".join(parts)

    def _input(self, parameter: dict[str, Any], pointer: str) -> dict[str, Any]:
        schema = self.ref(parameter.get("schema") or {}, pointer + "/schema")
        kind = schema.get("type") if isinstance(schema, dict) else None
        if isinstance(kind, list):  # 3.1: ["string", "null"]
            kind = next((k for k in kind if k != "null"), "string")
        spec: dict[str, Any] = {"type": kind if kind in _TYPES else "string"}
        if parameter.get("description"):
            spec["description"] = str(parameter["description"])
        default = schema.get("default") if isinstance(schema, dict) else None
        if parameter.get("in") == "path" or parameter.get("required"):
            if default is not None:
                spec["default"] = default
            return spec
        if default is not None:
            spec["default"] = default
        else:
            spec["required"] = False  # an optional parameter left out is not sent
        return spec

    def _body(self, body: dict[str, Any], pointer: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        content = body.get("content") or {}
        if not isinstance(content, dict) or not content:
            return None
        media = next((m for m in content if "json" in m), next(iter(content)))
        entry = self.ref(content[media], f"{pointer}/content/{media}") or {}
        schema = self.ref(entry.get("schema") or {}, f"{pointer}/content/{media}/schema")
        example = _example(entry)
        if example is _NONE:
            example = self._skeleton(schema, pointer, 0)
        if len(content) > 1:
            self.result.notes.append(f"{pointer}: the body is sent as {media} (also offered: "
                                     f"{', '.join(m for m in content if m != media)})")
        required = bool(body.get("required"))
        if "json" in media:
            inputs["body"] = {"type": "object" if isinstance(example, dict) else "array" if isinstance(example, list)
                              else "string", "default": example,
                              "description": "the request body (" + media + ")" + ("" if required else ", optional")}
            return {"json": "{{ inputs.body }}"}
        if media == "application/x-www-form-urlencoded" or media.startswith("multipart/"):
            fields: dict[str, Any] = {}
            files: dict[str, Any] = {}
            properties: dict[str, Any] = (schema.get("properties") or {}) if isinstance(schema, dict) else {}
            for prop, raw_schema in properties.items():
                prop_schema = self.ref(raw_schema, f"{pointer}/content/{media}/schema/properties/{prop}")
                input_name = unique(identifier(prop), set(inputs))
                is_file = isinstance(prop_schema, dict) and prop_schema.get("format") in ("binary", "base64")
                spec: dict[str, Any] = {"type": "string"}
                value = example.get(prop) if isinstance(example, dict) else None
                if value is not None and not is_file:
                    spec["default"] = value if isinstance(value, str) else json.dumps(value)
                elif prop not in (schema.get("required") or []):
                    spec["required"] = False
                spec["description"] = "a file path" if is_file else f"form field {prop}"
                inputs[input_name] = spec
                target = files if is_file and media.startswith("multipart/") else fields
                target[prop] = f"{{{{ inputs.{input_name} }}}}"
            if media.startswith("multipart/"):
                result: dict[str, Any] = {"multipart": fields}
                if files:
                    result["files"] = files
                return result
            return {"form": fields}
        inputs["body"] = {"type": "string", "default": example if isinstance(example, str) else "",
                          "description": f"the request body ({media})"}
        return {"text": "{{ inputs.body }}", "content_type": media}

    def _skeleton(self, schema: Any, pointer: str, depth: int) -> Any:
        schema = self.ref(schema, pointer)
        if not isinstance(schema, dict) or depth > 8:
            return None
        for key in ("example", "default"):
            if key in schema:
                return schema[key]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("allOf",):
            if key in schema:
                merged: dict[str, Any] = {}
                for part in schema[key]:
                    value = self._skeleton(part, pointer, depth + 1)
                    if isinstance(value, dict):
                        merged.update(value)
                return merged
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                return self._skeleton(schema[key][0], pointer, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind == "object" or "properties" in schema:
            return {str(k): self._skeleton(v, pointer, depth + 1) for k, v in (schema.get("properties") or {}).items()}
        if kind == "array":
            item = self._skeleton(schema.get("items") or {}, pointer, depth + 1)
            return [] if item is None else [item]
        return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(str(kind))


_NONE: Any = object()


def _example(entry: dict[str, Any]) -> Any:
    if "example" in entry:
        return entry["example"]
    examples = entry.get("examples")
    if isinstance(examples, dict) and examples:
        first = next(iter(examples.values()))
        if isinstance(first, dict) and "value" in first:
            return first["value"]
    return _NONE
