"""The only layer that imports httpx and tenacity: sending requests and mapping what goes wrong.

* ``_http``      pooled httpx clients per resolved connection, TLS info of a response
* ``_errors``    ``classify(exc, url=..., resolved=...)``: httpx/ssl exceptions -> flowrun errors
* ``_auth``      credentials -> ``httpx.Auth`` (basic, bearer, API key, OAuth2 client credentials)
* ``_retry``     retry policies on tenacity; every attempt recorded
* ``_request``   a REST step -> URL, headers, body
* ``_redirect``  which redirects are followed, and with what credentials
"""

from flowrun._transport._errors import classify, failed_before_sending

__all__ = ["classify", "failed_before_sending"]
