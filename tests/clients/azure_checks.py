"""The Azure Key Vault double checked by the official SDK, unmodified (issue 36):
azure-keyvault-secrets 4.12.0's `SecretClient` with a stub credential (no azure-identity:
the credential hands out `stub-token`, which the double accepts), over HTTPS with the
double's CA (`connection_verify`), the SDK's challenge-resource check left ON.

Called by conformance.py: `run(addresses, check, raises)`, `addresses` being the JSON line
`serve_doubles` prints (`azure_keyvault`: the vault URL, `azure_ca`: the CA file,
`azure_tenant`: the tenant the challenge names).
"""

import time
import uuid
from urllib.parse import urlparse

import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient


class StubCredential:
    """A TokenCredential that records what it was asked for."""

    def __init__(self):
        self.calls = []

    def get_token(self, *scopes, claims=None, tenant_id=None, enable_cae=False, **kwargs):
        self.calls.append({"scopes": scopes, "tenant_id": tenant_id})
        return AccessToken("stub-token", int(time.time()) + 3600)


def run(addresses, check, raises):
    url = addresses.get("azure_keyvault")
    if not url:
        check("azure: the double is served", lambda: False)
        return
    ca = addresses["azure_ca"]
    tenant = addresses["azure_tenant"]
    cred = StubCredential()
    client = SecretClient(vault_url=url, credential=cred, connection_verify=ca)
    tag = uuid.uuid4().hex[:8]
    name = f"conf-{tag}"
    host = urlparse(url)
    parent = host.hostname.split(".", 1)[1]
    expected_scope = f"https://{parent}:{host.port}/.default"

    first = {}

    def set_first():
        s = client.set_secret(name, "one")
        first["v"] = s.properties.version
        return s.value == "one" and s.name == name and len(s.properties.version) == 32 and s.properties.enabled

    check("azure: set_secret (PUT) through the challenge", set_first)
    check("azure: the challenge asked the credential for the vault's scope and tenant",
          lambda: cred.calls and cred.calls[0]["scopes"] == (expected_scope,) and cred.calls[0]["tenant_id"] == tenant)
    second = {}

    def set_second():
        s = client.set_secret(name, "two", content_type="text/plain", tags={"env": "conf"})
        second["v"] = s.properties.version
        return s.value == "two" and s.properties.version != first["v"] and s.properties.content_type == "text/plain"

    check("azure: set_secret again makes a new version", set_second)
    check("azure: get_secret (latest)", lambda: client.get_secret(name).value == "two")
    check("azure: get_secret by version", lambda: client.get_secret(name, first["v"]).value == "one")
    check("azure: the secret's id names the vault, the name and the version",
          lambda: client.get_secret(name).id == f"{url}/secrets/{name}/{second['v']}")
    check("azure: a missing secret raises ResourceNotFoundError with Key Vault's message",
          lambda: raises(ResourceNotFoundError, lambda: client.get_secret(f"missing-{tag}"),
                         says="was not found in this key vault"))
    check("azure: a missing version raises ResourceNotFoundError",
          lambda: raises(ResourceNotFoundError, lambda: client.get_secret(name, "0" * 32)))
    check("azure: list_properties_of_secret_versions (no values)", lambda: (
        sorted(p.version for p in client.list_properties_of_secret_versions(name)) == sorted([first["v"], second["v"]])))

    paged = f"conf-paged-{tag}"
    for i in range(30):
        client.set_secret(paged, str(i))
    check("azure: list_properties_of_secret_versions follows nextLink (30 versions, pages of 25)",
          lambda: len(list(client.list_properties_of_secret_versions(paged))) == 30)

    off = f"conf-off-{tag}"

    def disabled_raises():
        client.set_secret(off, "x", enabled=False)
        try:
            client.get_secret(off)
        except HttpResponseError as e:
            return (e.status_code == 403 and "disabled secret" in str(e)
                    and e.error is not None and e.error.code == "Forbidden")
        return False

    check("azure: a disabled secret raises HttpResponseError 403 Forbidden", disabled_raises)

    def update_disables():
        client.update_secret_properties(name, first["v"], enabled=False)
        return raises(HttpResponseError, lambda: client.get_secret(name, first["v"]), says="disabled")

    check("azure: update_secret_properties (PATCH) disables a version", update_disables)
    check("azure: the latest version stays readable", lambda: client.get_secret(name).value == "two")

    def delete():
        deleted = client.begin_delete_secret(name).result()
        return (deleted.name == name and deleted.recovery_id == f"{url}/deletedsecrets/{name}"
                and raises(ResourceNotFoundError, lambda: client.get_secret(name)))

    check("azure: begin_delete_secret (soft delete, polled to completion)", delete)
    check("azure: the credential was asked once (the token is cached)", lambda: len(cred.calls) == 1)

    # The wire, without the SDK.
    check("azure: a request without a token gets the 401 challenge",
          lambda: (lambda r: r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer authorization=")
                   and f'resource="https://{parent}:{host.port}"' in r.headers["WWW-Authenticate"])(
              requests.get(f"{url}/secrets/{paged}?api-version=7.5", verify=ca)))
    check("azure: a missing api-version is 400 BadParameter",
          lambda: (lambda r: r.status_code == 400 and r.json()["error"]["code"] == "BadParameter")(
              requests.get(f"{url}/secrets/{paged}", headers={"Authorization": "Bearer stub-token"}, verify=ca)))
    check("azure: an unknown api-version is 400 BadParameter",
          lambda: (lambda r: r.status_code == 400 and "not recognized" in r.json()["error"]["message"])(
              requests.get(f"{url}/secrets/{paged}?api-version=9.9", headers={"Authorization": "Bearer stub-token"}, verify=ca)))
