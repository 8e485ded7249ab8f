"""The Google Secret Manager double checked by the official SDK, unmodified (issue 36).

google-cloud-secret-manager (2.32.0) with its REST transport, `AnonymousCredentials` and
`client_options={"api_endpoint": "http://127.0.0.1:PORT"}` (the REST transport keeps an
`http://` scheme given in the endpoint). Called by conformance.py:
`run(addresses, check, raises)`, `addresses` being the JSON line `serve_doubles` prints.
"""

import uuid

from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager


def crc32c(data):
    """CRC32C (Castagnoli), as Secret Manager's `data_crc32c` carries it."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def google_status(fn):
    """The HTTP code and Google `status` of the error `fn` raises (the REST transport picks
    the exception class by HTTP code: FAILED_PRECONDITION arrives as BadRequest)."""
    try:
        fn()
    except exceptions.GoogleAPICallError as e:
        return e.code, e.response.json()["error"]["status"], e.response.json()["error"]["message"]
    return None


def run(addresses, check, raises):
    url = addresses.get("gcp_secrets")
    if not url:
        check("gcp: serve_doubles names the Secret Manager double", lambda: False)
        return
    c = secretmanager.SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": url},
    )
    project = "conformance"
    sid = f"db-{uuid.uuid4().hex[:8]}"
    parent = f"projects/{project}"
    secret = f"{parent}/secrets/{sid}"
    state = secretmanager.SecretVersion.State

    check("gcp: create_secret", lambda: c.create_secret(
        request={"parent": parent, "secret_id": sid,
                 "secret": {"replication": {"automatic": {}}}}).name == secret)
    check("gcp: create_secret twice is 409 ALREADY_EXISTS (Conflict)",
          lambda: google_status(lambda: c.create_secret(
              request={"parent": parent, "secret_id": sid,
                       "secret": {"replication": {"automatic": {}}}}))[:2] == (409, "ALREADY_EXISTS"))
    check("gcp: get_secret", lambda: c.get_secret(name=secret).name == secret)

    v1 = b"first-value"
    check("gcp: add_secret_version with data_crc32c", lambda: c.add_secret_version(
        request={"parent": secret,
                 "payload": {"data": v1, "data_crc32c": crc32c(v1)}}).name == f"{secret}/versions/1")
    check("gcp: add_secret_version with a wrong data_crc32c is 400 INVALID_ARGUMENT",
          lambda: raises(exceptions.BadRequest, lambda: c.add_secret_version(
              request={"parent": secret,
                       "payload": {"data": b"x", "data_crc32c": crc32c(b"y")}}), says="Checksum mismatch")
          and google_status(lambda: c.add_secret_version(
              request={"parent": secret,
                       "payload": {"data": b"x", "data_crc32c": crc32c(b"y")}}))[:2] == (400, "INVALID_ARGUMENT"))
    v2 = bytes(range(256))
    added = {}
    check("gcp: add_secret_version without data_crc32c", lambda: added.setdefault(
        "v2", c.add_secret_version(request={"parent": secret, "payload": {"data": v2}})).name == f"{secret}/versions/2")

    def access(version, data):
        r = c.access_secret_version(name=f"{secret}/versions/{version}")
        # The client's own integrity check, as Google's samples do it.
        return r.payload.data == data and r.payload.data_crc32c == crc32c(r.payload.data)
    check("gcp: access_secret_version latest (crc32c verified)",
          lambda: access("latest", v2) and c.access_secret_version(name=f"{secret}/versions/latest").name == f"{secret}/versions/2")
    check("gcp: access_secret_version 1 (crc32c verified)", lambda: access("1", v1))
    check("gcp: get_secret_version (state, no payload)", lambda: (
        lambda v: v.name == f"{secret}/versions/1" and v.state == state.ENABLED)(
            c.get_secret_version(name=f"{secret}/versions/1")))
    check("gcp: get_secret_version latest", lambda: c.get_secret_version(name=f"{secret}/versions/latest").name == f"{secret}/versions/2")

    check("gcp: list_secret_versions (newest first)", lambda: [
        v.name for v in c.list_secret_versions(request={"parent": secret})] == [f"{secret}/versions/2", f"{secret}/versions/1"])
    check("gcp: list_secret_versions pages (page_size 1)", lambda: [
        v.name for v in c.list_secret_versions(request={"parent": secret, "page_size": 1})] == [f"{secret}/versions/2", f"{secret}/versions/1"])
    check("gcp: list_secrets", lambda: secret in [s.name for s in c.list_secrets(request={"parent": parent})])

    check("gcp: disable_secret_version", lambda: c.disable_secret_version(
        name=f"{secret}/versions/2").state == state.DISABLED)
    check("gcp: access of a disabled version is 400 FAILED_PRECONDITION",
          lambda: google_status(lambda: c.access_secret_version(name=f"{secret}/versions/2"))
          == (400, "FAILED_PRECONDITION", f"Secret Version [{secret}/versions/2] is in DISABLED state."))
    check("gcp: latest is the newest version whatever its state (FAILED_PRECONDITION)",
          lambda: google_status(lambda: c.access_secret_version(name=f"{secret}/versions/latest"))[:2]
          == (400, "FAILED_PRECONDITION"))
    check("gcp: enable_secret_version", lambda: c.enable_secret_version(
        name=f"{secret}/versions/2").state == state.ENABLED and access("latest", v2))

    missing = f"{parent}/secrets/missing-{uuid.uuid4().hex[:8]}"
    check("gcp: a missing secret is NotFound with the double's message",
          lambda: raises(exceptions.NotFound, lambda: c.access_secret_version(name=f"{missing}/versions/latest"),
                         says="not found or has no versions"))
    check("gcp: a missing secret is 404 NOT_FOUND", lambda: google_status(
        lambda: c.access_secret_version(name=f"{missing}/versions/latest"))[:2] == (404, "NOT_FOUND"))
    check("gcp: a missing version is NotFound",
          lambda: raises(exceptions.NotFound, lambda: c.get_secret_version(name=f"{secret}/versions/9")))

    check("gcp: destroy_secret_version", lambda: (
        lambda v: v.state == state.DESTROYED and v.destroy_time is not None)(
            c.destroy_secret_version(name=f"{secret}/versions/1")))
    check("gcp: access of a destroyed version is 400 FAILED_PRECONDITION",
          lambda: google_status(lambda: c.access_secret_version(name=f"{secret}/versions/1"))
          == (400, "FAILED_PRECONDITION", f"Secret Version [{secret}/versions/1] is in DESTROYED state."))
    check("gcp: delete_secret", lambda: c.delete_secret(name=secret) is None)
    check("gcp: get_secret after delete is NotFound",
          lambda: raises(exceptions.NotFound, lambda: c.get_secret(name=secret)))
