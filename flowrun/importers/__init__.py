"""Importers: Postman collections, curl command lines and OpenAPI documents -> flowrun files.

An integration above the core: it imports flowrun, flowrun never imports it. Each importer
returns an ``ImportResult`` (files as JSON values, the environment variables to set, what was
not translated); ``write_result`` checks every file with flowrun's own loaders, then writes.
"""

from flowrun.importers._common import ImportResult, Untranslated
from flowrun.importers._write import check_result, render, write_result

__all__ = ["ImportResult", "Untranslated", "check_result", "import_curl", "import_openapi", "import_postman",
           "render", "write_result"]


def __getattr__(name: str) -> object:
    # Each source's module loads on first use: the curl importer does not read YAML support.
    if name == "import_postman":
        from flowrun.importers._postman import import_postman
        return import_postman
    if name == "import_curl":
        from flowrun.importers._curl import import_curl
        return import_curl
    if name == "import_openapi":
        from flowrun.importers._openapi import import_openapi
        return import_openapi
    raise AttributeError(name)
