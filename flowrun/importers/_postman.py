"""Postman collection v2.0 / v2.1 -> one flow, one step definition per request, alias records.

The flow runs the requests in collection order (folders flattened); each request is a step
definition whose Postman variables are its inputs, passed by the flow with ``with``: from a
step that saved the variable (its output), from the environment for secret-looking variables,
else from a flow input whose default is the collection's (or environment's) value. One alias per
base URL and credential; secrets become ``{"env": ...}`` references and are listed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flowrun._errors import ImportSourceError, ImportUnsupportedError
from flowrun._models._redact import is_credential_header
from flowrun.importers._common import AliasBook, ImportResult, Untranslated, env_name, identifier, slug, unique
from flowrun.importers._postman_scripts import translate_test_script

__all__ = ["import_postman"]

_SCHEMAS = ("v2.0.0", "v2.1.0", "/collection/v2/")
_VAR = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_SECRETISH = re.compile(r"pass|secret|token|api_?key|auth|credential|pwd", re.I)
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
_LANG_TYPES = {"json": "application/json", "xml": "application/xml", "html": "text/html",
               "javascript": "application/javascript", "text": "text/plain"}


def import_postman(path: Path, *, environment: Path | None = None, out: Path | None = None) -> ImportResult:
    data = _read_json(path)
    if isinstance(data, dict) and "info" not in data and isinstance(data.get("item"), list) and "name" in data:
        data = {**data, "info": {"name": data["name"], "schema": "v2.1.0"}}  # the SDK's own shape
    if isinstance(data, dict) and isinstance(data.get("info"), dict) and "schema" not in data["info"] \
            and isinstance(data.get("item"), list):
        data["info"]["schema"] = "v2.1.0"
    if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
        raise ImportSourceError("not a Postman collection: no 'info' object", file=path, pointer="/info",
                                hint="export the collection from Postman as Collection v2.1")
    schema = str(data["info"].get("schema", ""))
    if not any(version in schema for version in _SCHEMAS):
        raise ImportUnsupportedError(
            f"Postman collection format {schema or '(none given)'} is not supported: v2.0.0 and v2.1.0 are",
            file=path, pointer="/info/schema", hint="export the collection again as Collection v2.1")
    env_values: list[Any] = []
    if environment is not None:
        env_data = _read_json(environment)
        if not isinstance(env_data, dict) or not isinstance(env_data.get("values", []), list):
            raise ImportSourceError("not a Postman environment: 'values' must be a list", file=environment,
                                    pointer="/values")
        env_values = env_data.get("values", [])
    importer = _Importer(path, data, out or Path())
    try:
        return importer.run(env_values)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as error:
        # A shape the format does not allow (a number where a list belongs...): name the item.
        raise ImportSourceError(f"unexpected content in this part of the collection ({_shape(error)})",
                                file=path, pointer=importer.where or "/") from None


def _shape(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:80]}" if text else type(error).__name__


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImportSourceError(f"cannot read {path}: {error.strerror}", file=path,
                                hint="check the path (relative paths start from the working directory)") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportSourceError("not UTF-8 text", file=path) from None
    except ValueError as error:
        line = getattr(error, "lineno", None)
        raise ImportSourceError(f"not JSON: {error}", file=path, line=line) from None


class _Importer:
    def __init__(self, path: Path, data: dict[str, Any], out: Path) -> None:
        self.where = "/variable"
        self.path = path
        self.data = data
        self.out = out
        self.name = str(data["info"].get("name") or path.stem)
        self.prefix = slug(self.name, fallback="collection")
        self.result = ImportResult(source=str(path))
        self.aliases = AliasBook(self.result)
        self.values: dict[str, str] = {}
        self.secret_vars: set[str] = set()
        self.literal_secrets: dict[str, str] = {}  # stand-in variable -> where the literal was
        self.step_ids: set[str] = set()
        self.saved: dict[str, str] = {}  # Postman variable -> step id that saved it
        self.flow_inputs: dict[str, Any] = {}
        self.flow_env: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.flow_notes: list[str] = []

    def _define(self, item: Any, pointer: str) -> None:
        if isinstance(item, dict) and "key" not in item and "id" in item:
            item = {**item, "key": item["id"]}
        if not isinstance(item, dict) or "key" not in item:
            raise ImportSourceError("a variable needs a 'key'", file=self.path, pointer=pointer)
        if item.get("disabled") or item.get("enabled") is False:
            return
        key = str(item["key"])
        self.values[key] = "" if item.get("value") is None else str(item["value"])
        if item.get("type") == "secret" or _SECRETISH.search(key):
            self.secret_vars.add(key)

    # --- walking -----------------------------------------------------------------------------

    def run(self, env_values: list[Any]) -> ImportResult:
        variables = self.data.get("variable", self.data.get("variables", []))
        if variables is not None and not isinstance(variables, list):
            raise ImportSourceError("the collection's variables must be a list", file=self.path, pointer="/variable")
        for index, item in enumerate(variables or []):
            self.where = f"/variable/{index}"
            self._define(item, self.where)
        for index, item in enumerate(env_values):
            self.where = f"(environment)/values/{index}"
            self._define(item, self.where)
        self.where = "/event"
        self._events(self.data.get("event"), "", "the collection")
        items = self.data.get("item", [])
        if not isinstance(items, list):
            raise ImportSourceError("'item' must be a list of requests and folders", file=self.path, pointer="/item")
        for pointer, item, folders, auth in self._walk(items, "/item", [], self.data.get("auth")):
            self._request(item, pointer, folders, auth)
        if not self.entries:
            raise ImportSourceError("the collection holds no request flowrun can import", file=self.path,
                                    pointer="/item")
        flow: dict[str, Any] = {"name": self.name}
        description = str(_text(self.data["info"].get("description")) or "")
        if self.flow_notes:
            description = (description + "\n\n" if description else "") + "Not translated:\n" + "\n".join(
                self.flow_notes)
        description = (description + "\n\n" if description else "") + f"Imported from Postman: {self.path.name}"
        flow["description"] = description
        if self.flow_inputs:
            flow["inputs"] = self.flow_inputs
        if self.flow_env:
            flow["env"] = self.flow_env
        flow["steps"] = self.entries
        self.result.files[f"flows/{self.prefix}.json"] = flow
        return self.result

    def _walk(self, items: list[Any], pointer: str, folders: list[str],
              auth: Any) -> Iterator[tuple[str, dict[str, Any], list[str], Any]]:
        for index, item in enumerate(items):
            here = f"{pointer}/{index}"
            self.where = here
            if not isinstance(item, dict):
                raise ImportSourceError("an item must be an object (a request or a folder)", file=self.path,
                                        pointer=here)
            own = item.get("auth")
            item_auth = auth if own is None or (isinstance(own, dict) and own.get("type") == "inherit") else own
            if "item" in item:
                if not isinstance(item["item"], list):
                    raise ImportSourceError("a folder's 'item' must be a list", file=self.path, pointer=here + "/item")
                name = str(item.get("name", f"folder {index}"))
                self._events(item.get("event"), here, f"folder '{name}'")
                yield from self._walk(item["item"], here + "/item", [*folders, name], item_auth)
            elif "request" in item:
                yield here, item, folders, item_auth
            else:
                raise ImportSourceError("an item is a request (with 'request') or a folder (with 'item')",
                                        file=self.path, pointer=here)

    def _events(self, events: Any, pointer: str, where: str) -> None:
        for index, event in enumerate(events or []):
            for line_index, line in enumerate(_script_lines(event)):
                if line.strip() and not line.strip().startswith("//"):
                    self._untranslated(f"{pointer}/event/{index}/script/exec/{line_index}", line.strip(),
                                       f"a script of {where} runs around every request: not translated",
                                       self.flow_notes)

    def _untranslated(self, pointer: str, text: str, reason: str, notes: list[str]) -> None:
        entry = Untranslated(pointer, text, reason)
        self.result.not_translated.append(entry)
        notes.append("- " + entry.line())

    # --- one request -------------------------------------------------------------------------

    def _request(self, item: dict[str, Any], pointer: str, folders: list[str], auth: Any) -> None:
        self.where = pointer
        request = item["request"]
        name = str(item.get("name") or f"request {pointer}")
        step_id = unique(slug(name, fallback="request"), self.step_ids)
        notes: list[str] = []
        if isinstance(request, str):
            request = {"url": request, "method": "GET"}
        if not isinstance(request, dict):
            raise ImportSourceError("'request' must be a URL or an object", file=self.path,
                                    pointer=pointer + "/request")
        method = str(request.get("method") or "GET").upper()
        if method not in _METHODS:
            self._untranslated(pointer + "/request/method", method,
                               f"request '{name}' skipped: flowrun sends {', '.join(sorted(_METHODS))}",
                               self.flow_notes)
            return
        self.used: dict[str, str] = {}  # Postman variable -> input name of the definition
        base_url, path, query = self._url(request.get("url"), pointer + "/request/url")
        step: dict[str, Any] = {"description": "", "type": "rest"}
        own_auth = request.get("auth")
        inherits = own_auth is None or (isinstance(own_auth, dict) and own_auth.get("type") == "inherit")
        credential = self._auth(auth if inherits else own_auth, pointer, notes)
        host = urlsplit(base_url).hostname or "partner"
        step["alias"] = self.aliases.alias(base_url, hint=host, credential=credential)
        step["method"] = method
        step["path"] = path or "/"
        if query:
            step["query"] = query
        headers = self._headers(request.get("header"), pointer + "/request/header")
        if headers:
            step["headers"] = headers
        body = self._body(request.get("body"), pointer + "/request/body", name, notes)
        if body is not None:
            step["body"] = body
        self._behaviour(item.get("protocolProfileBehavior"), pointer + "/protocolProfileBehavior", step, notes)
        translation = None
        for index, event in enumerate(item.get("event") or []):
            lines = _script_lines(event)
            event_pointer = f"{pointer}/event/{index}/script/exec"
            if isinstance(event, dict) and event.get("listen") == "test":
                translation = translate_test_script(lines)
                for line_index, text, reason in translation.untranslated:
                    self._untranslated(f"{event_pointer}/{line_index}", text, reason, notes)
            else:
                for line_index, text in enumerate(lines):
                    if text.strip() and not text.strip().startswith("//"):
                        self._untranslated(f"{event_pointer}/{line_index}", text.strip(),
                                           "pre-request scripts are not translated", notes)
        outputs: dict[str, str] = {}
        if translation is not None:
            response: dict[str, Any] = {}
            if translation.expect_status:
                response["expect_status"] = translation.expect_status
            for variable, expression in translation.outputs.items():
                outputs[variable] = identifier(variable)
                response.setdefault("outputs", {})[identifier(variable)] = expression
            if response:
                step["response"] = response
            if translation.assertions:
                step["assert"] = translation.assertions
        # Optional, as in Postman: a variable without a value leaves a query parameter out.
        step["inputs"] = {ident: {"type": "string", "required": False,
                                  "description": f"Postman variable {{{{{variable}}}}}"}
                          for variable, ident in self.used.items()}
        if not step["inputs"]:
            del step["inputs"]
        description = [" / ".join([*folders, name])]
        doc = _text(request.get("description"))
        if doc:
            description.append(doc)
        if notes:
            description.append("Not translated:\n" + "\n".join(notes))
        step["description"] = "\n\n".join(description)
        entry: dict[str, Any] = {"id": step_id, "uses": f"../steps/{self.prefix}/{step_id}.json"}
        arguments = {ident: self._argument(variable) for variable, ident in self.used.items()}
        if arguments:
            entry["with"] = arguments
        self.entries.append(entry)
        self.result.files[f"steps/{self.prefix}/{step_id}.json"] = step
        for variable, output in outputs.items():
            self.saved[variable] = f"{step_id}.outputs.{output}"

    def _behaviour(self, behaviour: Any, pointer: str, step: dict[str, Any], notes: list[str]) -> None:
        """Postman follows redirects unless told not to; flowrun only when the step says so."""
        behaviour = behaviour if isinstance(behaviour, dict) else {}
        if behaviour.get("followRedirects", True) is not False:
            step["follow_redirects"] = True
        if isinstance(behaviour.get("maxRedirects"), int) and behaviour["maxRedirects"] > 0:
            step["max_redirects"] = min(behaviour["maxRedirects"], 50)  # flowrun's ceiling
        for key, value in behaviour.items():
            if key not in ("followRedirects", "maxRedirects"):
                self._untranslated(f"{pointer}/{key}", f"{key}: {json.dumps(value)}",
                                   "a request setting flowrun has no equivalent for (TLS verification is always on)"
                                   if key == "strictSSL" else "a request setting flowrun has no equivalent for",
                                   notes)

    def _argument(self, variable: str) -> str:
        if variable in self.saved:
            return f"{{{{ steps.{self.saved[variable]} }}}}"
        if variable in self.literal_secrets:
            name = env_name(variable)
            self.flow_env[name] = {"description": self.literal_secrets[variable]}
            self.result.env_vars.setdefault(name, self.literal_secrets[variable] + ": it was not copied")
            return f"{{{{ env.{name} }}}}"
        if variable in self.secret_vars:
            name = env_name(variable)
            self.flow_env[name] = {"description": f"Postman variable {{{{{variable}}}}}"}
            self.result.env_vars.setdefault(name, f"the Postman variable {{{{{variable}}}}} (a secret)")
            return f"{{{{ env.{name} }}}}"
        name = identifier(variable)
        if name not in self.flow_inputs:
            spec: dict[str, Any] = {"type": "string", "description": f"Postman variable {{{{{variable}}}}}"}
            if variable in self.values:
                spec["default"] = self._resolve(self.values[variable])
            else:
                # No value anywhere: optional, as Newman runs on with it unset (null leaves a query
                # parameter out).
                spec["required"] = False
                if variable.startswith("$"):
                    spec["description"] += " (a Postman dynamic variable: give a value with -i)"
                    self.result.notes.append(f"{{{{{variable}}}}} is a Postman dynamic variable: the flow takes it "
                                             f"as input '{name}'")
            self.flow_inputs[name] = spec
        return f"{{{{ inputs.{name} }}}}"

    def _resolve(self, text: str, depth: int = 0) -> str:
        if depth > 10:
            return text
        return _VAR.sub(lambda m: self._resolve(self.values[m[1]], depth + 1) if m[1] in self.values
                        and m[1] not in self.saved else m[0], text)

    def _field(self, name: str, value: Any, where: str) -> Any:
        """A header, query, form or JSON field's value; a literal in a field whose name says it
        carries a credential (the rule ``-v`` and reports mask by) becomes an environment variable."""
        if isinstance(value, str) and value.strip() and "{{" not in value and is_credential_header(name):
            stand_in = f"{self.prefix}_{name}"
            self.literal_secrets[stand_in] = f"the collection held a literal value for {where} '{name}'"
            return self._pills("{{" + stand_in + "}}")
        return self._pills(value)

    def _json_fields(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._json_fields(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json_fields(v, key) for v in value]
        return self._field(key, value, "the JSON body field") if key else self._pills(value)

    def _pills(self, text: Any) -> Any:
        """Postman ``{{var}}`` -> ``{{ inputs.var }}`` (the variable becomes an input)."""
        if not isinstance(text, str):
            return text
        text = text.replace("\\{{", "{{")

        def replace(match: re.Match[str]) -> str:
            variable = match[1]
            if variable not in self.used:
                self.used[variable] = unique(identifier(variable), set(self.used.values()))
            return f"{{{{ inputs.{self.used[variable]} }}}}"

        return _VAR.sub(replace, text)

    # --- URL -----------------------------------------------------------------------------------

    def _url(self, url: Any, pointer: str) -> tuple[str, str, list[list[Any]]]:
        if url is None:
            raise ImportSourceError("the request has no URL", file=self.path, pointer=pointer)
        query_items: list[Any] | None = None
        variables: list[Any] = []
        if isinstance(url, dict):
            raw = url.get("raw")
            if not isinstance(raw, str):
                raw = _rebuild(url)
            query_items = url.get("query") if isinstance(url.get("query"), list) else None
            variables = url.get("variable") or []
        elif isinstance(url, str):
            raw = url
        else:
            raise ImportSourceError("'url' must be a string or an object", file=self.path, pointer=pointer)
        raw = raw.strip()
        # A leading variable holds the base URL in most collections: resolve it to find the alias.
        while (lead := re.match(r"\{\{\s*([^{}]+?)\s*\}\}", raw)) and lead[1] in self.values:
            raw = self.values[lead[1]] + raw[lead.end():]
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", raw):
            if raw.startswith("{{"):
                self.result.notes.append(f"{pointer}: the URL starts with a variable that has no value: the alias "
                                         "points at https://partner.invalid; set its url")
                raw = "https://partner.invalid/" + raw
            else:
                raw = "http://" + raw
        without_fragment = raw.split("#", 1)[0]
        head, _, query_text = without_fragment.partition("?")
        parts = urlsplit(head)
        netloc = self._resolve(parts.netloc)
        if "@" in netloc:
            netloc = netloc.rsplit("@", 1)[1]
            self.result.notes.append(f"{pointer}: the URL held a user name and password: left out (flowrun sends "
                                     "credentials from the alias: add a basic credential)")
        if _VAR.search(netloc) or parts.scheme.lower() not in ("http", "https"):
            raise ImportUnsupportedError(
                f"the URL's host {netloc[:80]!r} (scheme {parts.scheme!r}) is a variable without a value, or the "
                "scheme is not http(s)", file=self.path, pointer=pointer,
                hint="give the variable a value (--environment ENV.json)")
        base_url = f"{parts.scheme.lower()}://{netloc}"
        path_vars = {str(v.get("key")): v.get("value") for v in variables if isinstance(v, dict)}
        segments = []
        for segment in parts.path.split("/"):
            if segment.startswith(":") and len(segment) > 1:
                key = segment[1:]
                if key not in self.values and path_vars.get(key) is not None:
                    self.values[key] = str(path_vars[key])
                segments.append("{{" + key + "}}")
            else:
                segments.append(segment)
        path = self._pills("/".join(segments))
        query: list[list[Any]] = []
        if query_items is not None:
            for item in query_items:
                if isinstance(item, dict) and not item.get("disabled") and item.get("key") is not None:
                    query.append([self._pills(str(item["key"])), self._field(
                        str(item["key"]), "" if item.get("value") is None else str(item["value"]), "query parameter")])
        elif query_text:
            for key, value in parse_qsl(query_text, keep_blank_values=True):
                query.append([self._pills(key), self._field(key, value, "query parameter")])
        return base_url, str(path), query

    # --- headers, auth, body -------------------------------------------------------------------

    def _headers(self, header: Any, pointer: str) -> list[list[str]]:
        pairs: list[list[str]] = []
        if isinstance(header, str):
            for line in header.splitlines():
                name, sep, value = line.partition(":")
                if sep and name.strip():
                    pairs.append([name.strip(), self._field(name.strip(), value.strip(), "header")])
            return pairs
        for index, item in enumerate(header or []):
            if not isinstance(item, dict) or "key" not in item:
                raise ImportSourceError("a header needs a 'key'", file=self.path, pointer=f"{pointer}/{index}")
            if item.get("disabled"):
                continue
            pairs.append([str(item["key"]), self._field(str(item["key"]), "" if item.get("value") is None
                                                        else str(item["value"]), "header")])
        return pairs

    def _auth(self, auth: Any, pointer: str, notes: list[str]) -> dict[str, Any] | None:
        if not isinstance(auth, dict) or auth.get("type") in (None, "noauth"):
            return None
        kind = str(auth["type"])
        params = _params(auth.get(kind))
        where = f"{pointer}/request/auth"
        if kind == "basic":
            return {"type": "basic", "username": self._plain(params.get("username", "")),
                    "password": self._secret(params.get("password"), "PASSWORD")}
        if kind == "bearer":
            return {"type": "bearer", "token": self._secret(params.get("token"), "TOKEN")}
        if kind == "apikey":
            credential: dict[str, Any] = {"type": "api_key", "key": self._secret(params.get("value"), "API_KEY")}
            credential["query" if params.get("in") == "query" else "header"] = self._plain(
                params.get("key") or "X-API-Key")
            return credential
        if kind == "oauth2" and params.get("grant_type") == "client_credentials":
            credential = {"type": "oauth2_client_credentials",
                          "token_url": self._plain(params.get("accessTokenUrl", "")),
                          "client_id": self._plain(params.get("clientId", "")),
                          "client_secret": self._secret(params.get("clientSecret"), "CLIENT_SECRET")}
            if params.get("scope"):
                credential["scope"] = self._plain(params["scope"])
            if params.get("client_authentication") == "body":
                credential["client_auth"] = "body"
            return credential
        if kind == "oauth2" and params.get("accessToken"):
            return {"type": "bearer", "token": self._secret(params.get("accessToken"), "TOKEN")}
        self._untranslated(where, f"auth type {kind}", "flowrun has no such credential: the alias sends none", notes)
        return None

    def _plain(self, value: Any) -> str:
        return self._resolve("" if value is None else str(value))

    def _secret(self, value: Any, what: str) -> dict[str, str]:
        text = "" if value is None else str(value).strip()
        var = _VAR.fullmatch(text)
        if var:
            name = env_name(var[1])
            return self.result.need_env(name, f"the Postman variable {{{{{var[1]}}}}}")
        name = env_name(self.prefix, what)
        why = ("the collection held a literal value: it was not copied" if text else "the collection left it empty")
        return self.result.need_env(name, why)

    def _body(self, body: Any, pointer: str, name: str, notes: list[str]) -> dict[str, Any] | None:
        if not isinstance(body, dict) or not body or body.get("disabled"):
            return None
        mode = body.get("mode")
        if mode is None:
            return None
        if mode == "raw":
            text = str(body.get("raw") or "")
            if not text:
                return None
            language = str(((body.get("options") or {}).get("raw") or {}).get("language") or "")
            if language == "json" or (not language and text.lstrip()[:1] in "{["):
                try:
                    return {"json": self._json_fields(json.loads(text))}
                except ValueError:
                    pass
            return {"text": self._pills(text), "content_type": _LANG_TYPES.get(language, "text/plain")}
        if mode == "urlencoded":
            form: dict[str, Any] = {}
            for item in body.get("urlencoded") or []:
                if isinstance(item, dict) and not item.get("disabled") and item.get("key") is not None:
                    _add(form, str(item["key"]), self._field(str(item["key"]), "" if item.get("value") is None
                                                             else str(item["value"]), "form field"))
            return {"form": form}
        if mode == "formdata":
            fields: dict[str, Any] = {}
            files: dict[str, Any] = {}
            for index, item in enumerate(body.get("formdata") or []):
                if not isinstance(item, dict) or item.get("disabled") or item.get("key") is None:
                    continue
                if item.get("type") == "file":
                    src = item.get("src")
                    if isinstance(src, list):
                        src = src[0] if src else None
                    if not src:
                        self._untranslated(f"{pointer}/formdata/{index}", str(item["key"]),
                                           "a file field without a file: left out", notes)
                        continue
                    files[str(item["key"])] = self._file(str(src))
                else:
                    _add(fields, str(item["key"]), self._field(str(item["key"]), "" if item.get("value") is None
                                                               else str(item["value"]), "form field"))
            result: dict[str, Any] = {"multipart": fields}
            if files:
                result["files"] = files
            return result
        if mode == "file":
            src = (body.get("file") or {}).get("src")
            if not src:
                self._untranslated(pointer + "/file", "(no file)", "a file body without a file: no body sent", notes)
                return None
            return {"file": self._file(str(src))}
        if mode == "graphql":
            graphql = body.get("graphql") or {}
            payload: dict[str, Any] = {"query": self._pills(str(graphql.get("query") or ""))}
            variables = graphql.get("variables")
            if isinstance(variables, str) and variables.strip():
                try:
                    payload["variables"] = _map_strings(json.loads(variables), self._pills)
                except ValueError:
                    raise ImportSourceError("the GraphQL variables are not JSON", file=self.path,
                                            pointer=pointer + "/graphql/variables") from None
            return {"json": payload}
        raise ImportUnsupportedError(f"request '{name}': body mode {mode!r} is unknown", file=self.path,
                                     pointer=pointer + "/mode")

    def _file(self, src: str) -> str:
        """A file path as the step definition (in steps/<collection>/) reaches it; Newman reads
        relative paths from the working directory."""
        target = Path(src) if Path(src).is_absolute() else Path.cwd() / src
        return os.path.relpath(target, (self.out / "steps" / self.prefix).resolve())


def _params(value: Any) -> dict[str, Any]:
    """Auth parameters: a list of {key, value} (v2.1) or an object (v2.0)."""
    if isinstance(value, list):
        return {str(p.get("key")): p.get("value") for p in value if isinstance(p, dict)}
    if isinstance(value, dict):
        return dict(value)
    return {}


def _script_lines(event: Any) -> list[str]:
    script = event.get("script") if isinstance(event, dict) else None
    exec_ = script.get("exec") if isinstance(script, dict) else None
    if isinstance(exec_, str):
        return exec_.splitlines()
    return [str(line) for line in exec_ or []]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return "" if value is None else str(value)


def _rebuild(url: dict[str, Any]) -> str:
    host = url.get("host", "")
    host = ".".join(map(str, host)) if isinstance(host, list) else str(host)
    path = url.get("path", "")
    path = "/".join(map(str, path)) if isinstance(path, list) else str(path)
    protocol = url.get("protocol")
    port = f":{url['port']}" if url.get("port") else ""
    return (f"{protocol}://" if protocol else "") + host + port + ("/" + path.lstrip("/") if path else "")


def _add(target: dict[str, Any], key: str, value: Any) -> None:
    if key in target:
        current = target[key]
        target[key] = [*current, value] if isinstance(current, list) else [current, value]
    else:
        target[key] = value


def _map_strings(value: Any, function: Any) -> Any:
    if isinstance(value, str):
        return function(value)
    if isinstance(value, list):
        return [_map_strings(v, function) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, function) for k, v in value.items()}
    return value
