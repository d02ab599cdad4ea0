"""schemathesis hooks for scripts/api-check.

- Binary bodies (OCSP requests) are sent as bytes, and binary answers (DER, PKCS#12, OCSP)
  are read as strings, as the document describes them.
- Half of the generated path ids, and of the owners named in bodies, are replaced by ones
  that exist (an owner, a certificate, a request, the builtin CA), read from
  $CMP_API_CHECK_IDS, so that calls reach past "not found" into the handlers.
"""

import itertools
import json
import os

import schemathesis

schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")


@schemathesis.deserializer(
    "application/pkix-crl",
    "application/pkix-cert",
    "application/ocsp-response",
    "application/x-pkcs12",
)
def binary(ctx, response):
    return response.content.decode("latin-1")


_IDS = json.load(open(os.environ["CMP_API_CHECK_IDS"])) if "CMP_API_CHECK_IDS" in os.environ else {}
_TURN = itertools.count()

# Path prefix -> the existing id to use there.
_KNOWN = [
    ("/api/v1/certificates/", "certificate"),
    ("/api/v1/requests/", "request"),
    ("/api/v1/owners/", "owner"),
    ("/api/v1/adapters/", "adapter"),
    ("/pki/", "adapter"),
]


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if not _IDS or not path_parameters or next(_TURN) % 2 == 0:
        return path_parameters
    path = context.operation.path
    for prefix, kind in _KNOWN:
        if path.startswith(prefix) and kind in _IDS:
            key = "name" if "{name}" in path else "id"
            if key in path_parameters:
                path_parameters[key] = _IDS[kind]
            break
    return path_parameters


@schemathesis.hook
def map_body(context, body):
    if _IDS and isinstance(body, dict) and "owner" in body and next(_TURN) % 2 == 1:
        body["owner"] = _IDS["owner"]
    return body
