"""The only layer that imports httpx, zeep and tenacity: sending requests, mapping what goes wrong.

* ``_http``      pooled httpx clients per resolved connection, TLS info of a response
* ``_exchange``  one REST exchange: send, redirects, body read with a size cap or to a file
* ``_decode``    Content-Encoding inflated in bounded slices (the cap counts decoded bytes)
* ``_streams``   the clients' network streams: a total deadline per attempt, TLS version on failure
* ``_errors``    ``classify(exc, url=..., resolved=...)``: httpx/ssl exceptions -> flowrun errors
* ``_auth``      credentials -> ``httpx.Auth`` (basic, bearer, API key, OAuth2 client credentials)
* ``_retry``     retry policies on tenacity; every attempt recorded
* ``_request``   a REST step -> URL, headers, body
* ``_redirect``  which redirects are followed, and with what credentials
* ``_proxy``     per request, the direct transport or the proxy's (httpx CONNECT tunnel); interception check
* ``_connect_to`` dial another address than host:port; ``_probe``: ``alias test``; ``_soap``, ``_wsdl``: SOAP
"""

from flowrun._transport._errors import classify, failed_before_sending

__all__ = ["classify", "failed_before_sending"]
