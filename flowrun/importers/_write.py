"""Writing an import: every file is checked by flowrun's own loaders first, in a staging copy of
the output directory, and nothing is written when one of them is refused.

The staging copy holds the alias files already in ``--out`` too, so a new record whose name is
taken there is caught before anything changes on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flowrun._errors import FlowrunError, ImportOutputError, UsageError
from flowrun.importers._common import ImportResult

__all__ = ["check_result", "render", "write_result"]


def render(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def check_result(result: ImportResult, out: Path | None = None) -> None:
    """Raise ``ImportOutputError`` listing every problem flowrun's loaders find in the files."""
    with tempfile.TemporaryDirectory(prefix="flowrun-import-") as tmp:
        stage = Path(tmp)
        if out is not None and (out / "aliases").is_dir():
            shutil.copytree(out / "aliases", stage / "aliases")
        home = (out or Path()).resolve()
        for relative, data in result.files.items():
            target = stage / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(_anchored(data, relative, home)), encoding="utf-8")
        problems = _problems(stage, result)
    if problems:
        listing = "; ".join(problems[:10]) + ("; ..." if len(problems) > 10 else "")
        raise ImportOutputError(f"the imported files would not load: {listing}", file=result.source)


def _anchored(data: Any, relative: str, home: Path) -> Any:
    """``data`` with the paths it names made absolute from where the file will be written, so the
    staging copy checks the key material and body files the written files will point at."""
    base = (home / relative).parent

    def absolute(value: Any) -> Any:
        # normpath: the folders in between may not exist yet, and the OS resolves ".." through them.
        if isinstance(value, str) and not Path(value).is_absolute():
            return os.path.normpath(base / value)
        return value

    if relative.startswith("aliases/") and isinstance(data, list):
        anchored = []
        for record in data:
            if isinstance(record, dict) and record.get("kind") in ("keystore", "trust_store_cert"):
                anchored.append({k: absolute(v) if k in ("file", "key_file") else v for k, v in record.items()})
            else:
                anchored.append(record)
        return anchored
    if relative.startswith("steps/") and isinstance(data, dict) and isinstance(data.get("body"), dict):
        body = dict(data["body"])
        if "file" in body:
            body["file"] = absolute(body["file"])
        if isinstance(body.get("files"), dict):
            body["files"] = {k: {**v, "path": absolute(v.get("path"))} if isinstance(v, dict) else absolute(v)
                             for k, v in body["files"].items()}
        return {**data, "body": body}
    return data


def _problems(stage: Path, result: ImportResult) -> list[str]:
    from flowrun._flow_checks import check_flow, check_references
    from flowrun._load._aliases import alias_files, load_alias_records
    from flowrun._load._flows import FlowLoader
    from flowrun._registry import Registry

    problems: list[str] = []
    registry = None
    if (stage / "aliases").is_dir():
        try:
            registry = Registry(load_alias_records(alias_files(stage / "aliases")))
        except FlowrunError as error:
            problems.append(_shown(error, stage))
    loader = FlowLoader(collect=True)
    flows = []
    for relative in sorted(result.files):
        path = stage / relative
        if relative.startswith("flows/"):
            flow = loader.load(path)
            if flow is not None:
                flows.append(flow)
                problems.extend(_shown(p.error, stage) for p in check_flow(flow) if p.is_error)
        elif relative.startswith("steps/"):
            loader.definition(path)
    problems.extend(_shown(error, stage) for error in loader.problems)
    if registry is not None:
        # Unset secrets are expected (the user sets them after the import), and key material may be
        # put in place later: those are notes, not reasons to write nothing.
        for problem in check_references(flows, registry):
            code = problem.error.code
            if not problem.is_error or code == "definition.secret_unavailable":
                continue
            if code.startswith(("keystore.", "trust_cert.")):
                note = f"key material not usable yet: {_shown(problem.error, stage)}"
                if note not in result.notes:
                    result.notes.append(note)
                continue
            problems.append(_shown(problem.error, stage))
    return list(dict.fromkeys(problems))


def _shown(error: FlowrunError, stage: Path) -> str:
    text = str(error).replace(str(stage.resolve()) + os.sep, "").replace(str(stage) + os.sep, "")
    return f"[{error.code}] {text}"


def write_result(result: ImportResult, out: Path, *, force: bool = False) -> list[Path]:
    """Check, then write every file under ``out``; an existing file is kept unless ``force``."""
    existing = [out / relative for relative in sorted(result.files) if (out / relative).exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise UsageError(f"{len(existing)} file(s) already exist in {out}: {shown}",
                         hint="import into another directory, or overwrite them with --force (see --dry-run)")
    check_result(result, out)
    written: list[Path] = []
    for relative, data in sorted(result.files.items()):
        target = out / relative
        if target.is_symlink():
            raise UsageError(f"{target} is a symbolic link: not written through", hint="remove the link first")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(data), encoding="utf-8")
        written.append(target)
    return written
