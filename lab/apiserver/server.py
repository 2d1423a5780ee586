"""The HTTP(S) front of the emulator: routing, discovery, auth, watch streaming."""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from lab.apiserver.errors import ApiError
from lab.apiserver.resources import Resource
from lab.apiserver.store import Store, dumps, now
from lab.pki import make_pki

VERSION = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-lab", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.0", "compiler": "gc",
    "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "31",
}

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, api: ApiServer, tls_context: ssl.SSLContext | None):
        self.api = api
        self.tls_context = tls_context
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            return  # a client that failed the TLS handshake or hung up: nothing to report
        super().handle_error(request, client_address)

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls_context is not None:
            # the handshake happens in the request thread (first read), not in the accept loop
            sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class ApiServer:
    """The emulator: one store, an HTTP port (no auth) and an HTTPS port (bearer tokens)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls_port: int | None = 0, data_dir: str | Path | None = None,
                 token: str | None = None, readonly_token: str | None = None, verbose: bool = False, store: Store | None = None):
        self.host = host
        self.store = store or Store()
        self.token = token or secrets.token_hex(16)
        self.readonly_token = readonly_token or ("readonly-" + secrets.token_hex(12))
        self.verbose = verbose
        self.bookmark_interval = 5.0  # seconds of silence before a BOOKMARK on watches that allow them
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self.http = _Server((host, port), Handler, self, None)
        self._servers.append(self.http)
        self.pki: dict = {}
        self.https = None
        if tls_port is not None:
            pki_dir = Path(data_dir) / "pki" if data_dir else Path(tempfile.mkdtemp(prefix="lab-apiserver-pki-"))
            self.pki = make_pki(pki_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.pki["cert"], self.pki["key"])
            ctx.set_alpn_protocols(["http/1.1"])
            self.https = _Server((host, tls_port), Handler, self, ctx)
            self._servers.append(self.https)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http.server_address[1]}"

    @property
    def https_url(self) -> str | None:
        return f"https://{self.host}:{self.https.server_address[1]}" if self.https else None

    def start(self) -> ApiServer:
        for srv in self._servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="lab-apiserver-http")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self.store.close()
        with self.store.cond:
            self.store.cond.notify_all()

    def endpoints(self, kubeconfig: str | None = None) -> dict:
        out = {"url": self.url, "https_url": self.https_url, "token": self.token, "readonly_token": self.readonly_token,
               "ca_cert": self.pki.get("ca_cert")}
        if kubeconfig:
            out["kubeconfig"] = kubeconfig
        return out

    def write_kubeconfig(self, path: str | Path) -> str:
        path = Path(path)
        clusters = [{"name": "lab", "cluster": {"server": self.url}}]
        users = [{"name": "lab", "user": {}}]
        contexts = [{"name": "lab", "context": {"cluster": "lab", "user": "lab", "namespace": "default"}}]
        if self.https:
            clusters.append({"name": "lab-tls", "cluster": {"server": self.https_url, "certificate-authority": self.pki["ca_cert"]}})
            users.append({"name": "lab-tls", "user": {"token": self.token}})
            users.append({"name": "lab-readonly", "user": {"token": self.readonly_token}})
            contexts.append({"name": "lab-tls", "context": {"cluster": "lab-tls", "user": "lab-tls", "namespace": "default"}})
            contexts.append({"name": "lab-readonly", "context": {"cluster": "lab-tls", "user": "lab-readonly", "namespace": "default"}})
        config = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "lab",
                  "clusters": clusters, "users": users, "contexts": contexts}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return str(path)


# ---------------------------------------------------------------- discovery documents


def _resource_entries(api: ApiServer, group: str, version: str) -> list[dict]:
    out = []
    for res in sorted(api.store.registry.resources_of(group, version), key=lambda r: r.plural):
        entry = {"name": res.plural, "singularName": res.singular_name, "namespaced": res.namespaced, "kind": res.kind,
                 "verbs": res.verbs, "storageVersionHash": hashlib.sha256(f"{group}/{res.plural}".encode()).hexdigest()[:11]}
        if res.short_names:
            entry["shortNames"] = res.short_names
        if res.categories:
            entry["categories"] = res.categories
        out.append(entry)
        if res.status:
            out.append({"name": f"{res.plural}/status", "singularName": "", "namespaced": res.namespaced, "kind": res.kind,
                        "verbs": ["get", "patch", "update"]})
        if res.scale:
            out.append({"name": f"{res.plural}/scale", "singularName": "", "namespaced": res.namespaced, "group": "autoscaling",
                        "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        if res.kind == "Pod":
            out.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy", "version": "v1",
                        "kind": "Eviction", "verbs": ["create"]})
        for sub in res.extra_sub:
            out.append({"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced, "kind": res.kind, "verbs": ["get"]})
    return out


def _group_doc(name: str, versions: list[str]) -> dict:
    return {
        "name": name,
        "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
    }


def _openapi_v3_index(api: ApiServer) -> dict:
    paths = {}
    for group, versions in api.store.registry.groups().items():
        for v in versions:
            key = f"apis/{group}/{v}" if group else f"api/{v}"
            digest = hashlib.sha256(json.dumps(_openapi_v3_gv(api, group, v), sort_keys=True).encode()).hexdigest()[:16].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def _openapi_v3_gv(api: ApiServer, group: str, version: str) -> dict:
    """A minimal OpenAPI v3 document: one PATCH operation per kind that declares the
    ``fieldValidation`` query parameter (kubectl checks for it) and no schemas (so kubectl
    computes client-side strategic merge patches from its built-in types)."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths = {}
    for res in api.store.registry.resources_of(group, version):
        base = f"{prefix}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{prefix}/{res.plural}"
        gvk = {"group": group, "version": version, "kind": res.kind}
        params = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in ("dryRun", "fieldManager", "fieldValidation")]
        paths[base + "/{name}"] = {
            "get": {"operationId": f"read{res.kind}", "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk,
                    "responses": {"200": {"description": "OK"}}},
            "patch": {"operationId": f"patch{res.kind}", "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                      "parameters": params, "responses": {"200": {"description": "OK"}}},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]}, "paths": paths,
            "components": {"schemas": {}}}


def _access_review(body: dict, role: str) -> dict:
    """Answer a SelfSubjectAccessReview: the admin identity may do anything, the read-only
    token may get, list and watch."""
    attrs = body["spec"].get("resourceAttributes") or {}
    verb = attrs.get("verb") or ("get" if body["spec"].get("nonResourceAttributes") else "")
    allowed = role == "admin" or verb in ("get", "list", "watch")
    out = dict(body)
    out.update({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1"})
    out.setdefault("metadata", {})
    out["status"] = {"allowed": allowed, "reason": "lab: admin token" if role == "admin" else
                     ("lab: read-only token may read" if allowed else "lab: read-only token may only get, list and watch")}
    if not allowed:
        out["status"]["denied"] = True
    return out


# ---------------------------------------------------------------- tables for kubectl get


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        seconds = max(0, int(time.time() - time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) + time.mktime(time.gmtime(0))))
    except ValueError:
        return "<unknown>"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _columns(res: Resource):
    """(column definitions, row function) per kind."""
    def name(o):
        return o["metadata"]["name"]

    def age(o):
        return _age(o["metadata"].get("creationTimestamp"))

    cols = [("Name", "string", name)]
    kind = res.kind
    if kind == "Pod":
        def ready(o):
            statuses = (o.get("status") or {}).get("containerStatuses") or []
            total = len((o.get("spec") or {}).get("containers") or [])
            return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"

        def phase(o):
            for s in (o.get("status") or {}).get("containerStatuses") or []:
                waiting = (s.get("state") or {}).get("waiting")
                if waiting and waiting.get("reason"):
                    return waiting["reason"]
            if o["metadata"].get("deletionTimestamp"):
                return "Terminating"
            return (o.get("status") or {}).get("phase", "")

        def restarts(o):
            return sum(int(s.get("restartCount") or 0) for s in (o.get("status") or {}).get("containerStatuses") or [])

        cols += [("Ready", "string", ready), ("Status", "string", phase), ("Restarts", "integer", restarts)]
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        def ready(o):
            return f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 0)}"

        cols += [("Ready", "string", ready)]
        if kind == "Deployment":
            cols += [("Up-to-date", "integer", lambda o: (o.get("status") or {}).get("updatedReplicas", 0)),
                     ("Available", "integer", lambda o: (o.get("status") or {}).get("availableReplicas", 0))]
    elif kind == "Namespace":
        cols += [("Status", "string", lambda o: (o.get("status") or {}).get("phase", ""))]
    elif kind == "Service":
        cols += [("Type", "string", lambda o: (o.get("spec") or {}).get("type", "")),
                 ("Cluster-IP", "string", lambda o: (o.get("spec") or {}).get("clusterIP", ""))]
    elif kind == "Node":
        def node_status(o):
            for c in (o.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Ready":
                    return "Ready" if c.get("status") == "True" else "NotReady"
            return "Unknown"

        cols += [("Status", "string", node_status)]
    cols += [("Age", "string", age)]
    return cols


def _table(res: Resource, objs: list[dict], list_meta: dict) -> dict:
    cols = _columns(res)
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n, "priority": 0}
                              for n, t, _f in cols],
        "rows": [{"cells": [f(o) for _n, _t, f in cols],
                  "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}
                 for o in objs],
    }


# ---------------------------------------------------------------- the request handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-apiserver/1.0"
    server: _Server

    def log_message(self, fmt, *args):
        if self.server.api.verbose:
            super().log_message(fmt, *args)

    # -- plumbing
    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, dumps(obj))

    def _error(self, err: ApiError) -> None:
        self._json(err.code, err.status())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(length) if length else b""

    def _parse_body(self, raw: bytes, content_type: str):
        if not raw.strip():
            return None
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, f"the request body is not valid {'YAML' if 'yaml' in content_type else 'JSON'}: {exc}") from None

    def _auth(self) -> str:
        """'admin' or 'readonly'; raise 401 on the TLS port without a valid token."""
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        api = self.server.api
        if token and secrets.compare_digest(token, api.readonly_token):
            return "readonly"
        if self.server.tls_context is None:
            return "admin"
        if token and secrets.compare_digest(token, api.token):
            return "admin"
        raise ApiError(401, "Unauthorized")

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            raw = self._read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else b""
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            role = self._auth()
            self._route(split.path.rstrip("/") or "/", query, raw, role)
        except ApiError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer 500 with the reason, keep serving
            traceback.print_exc()
            try:
                self._error(ApiError(500, f"lab apiserver internal error: {exc!r}"))
            except OSError:
                self.close_connection = True

    # -- routing
    def _route(self, path: str, query: dict, raw: bytes, role: str) -> None:
        api = self.server.api
        registry = api.store.registry
        parts = [p for p in path.split("/") if p]
        if self.command in ("GET", "HEAD"):
            if path == "/version":
                return self._json(200, VERSION)
            if path in ("/healthz", "/livez", "/readyz"):
                return self._send(200, b"ok", "text/plain; charset=utf-8")
            if path == "/api":
                return self._json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.server.server_address[0]}:{self.server.server_address[1]}"}]})
            if path == "/apis":
                groups = [_group_doc(g, vs) for g, vs in registry.groups().items() if g]
                return self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            if path == "/openapi/v3":
                return self._json(200, _openapi_v3_index(api))
            if len(parts) >= 3 and parts[:2] == ["openapi", "v3"]:
                rest = parts[2:]
                group, version = ("", rest[1]) if rest[0] == "api" and len(rest) == 2 else (rest[1], rest[2]) if len(rest) == 3 else (None, None)
                if version and registry.resources_of(group, version):
                    return self._json(200, _openapi_v3_gv(api, group, version))
                raise ApiError(404, "the server could not find the requested resource")
            if len(parts) == 2 and parts[0] == "apis":
                versions = registry.groups().get(parts[1])
                if not versions:
                    raise ApiError(404, "the server could not find the requested resource")
                doc = _group_doc(parts[1], versions)
                doc.update({"kind": "APIGroup", "apiVersion": "v1"})
                return self._json(200, doc)
            if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
                group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
                resources = _resource_entries(api, group, version)
                if not resources:
                    raise ApiError(404, "the server could not find the requested resource")
                return self._json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": f"{group}/{version}" if group else version, "resources": resources})
        if parts and parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        res = registry.get(group, version, plural)
        if res is None:
            raise ApiError(404, "the server could not find the requested resource")
        if ns is not None and not res.namespaced:
            raise ApiError(404, "the server could not find the requested resource")
        if sub is not None and not ((sub == "status" and res.status) or (sub == "eviction" and res.kind == "Pod")
                                    or (sub == "scale" and res.scale) or sub in res.extra_sub
                                    or (sub == "finalize" and res.kind == "Namespace")):
            raise ApiError(404, "the server could not find the requested resource")
        if sub == "finalize":
            sub = "status"
        method = self.command
        if role == "readonly" and method not in ("GET", "HEAD") and res.kind != "SelfSubjectAccessReview":
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
            where = f' in the namespace "{ns}"' if ns else (" at the cluster scope" if not res.namespaced else "")
            raise ApiError(403, f'{res.plural}{"." + res.group if res.group else ""} {("" if not name else repr(name).replace(chr(39), chr(34)) + " ")}'
                                f'is forbidden: User "lab:readonly" cannot {verb} resource "{res.plural}" in API group "{res.group}"{where}',
                           reason="Forbidden", details={"name": name or "", "group": res.group, "kind": res.plural})
        if res.kind == "SelfSubjectAccessReview":
            if method != "POST" or name is not None:
                raise ApiError(405, f"the server does not allow this method on the requested resource ({method} {path})")
            body = self._parse_body(raw, (self.headers.get("Content-Type") or "application/json").lower())
            if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
                raise ApiError(400, "a SelfSubjectAccessReview needs a spec")
            return self._json(201, _access_review(body, role))
        dry_run = query.get("dryRun") == "All"
        if "dryRun" in query and query["dryRun"] not in ("All", ""):
            raise ApiError(400, f"invalid dryRun value {query['dryRun']!r}: only 'All' is supported")
        manager = query.get("fieldManager") or (self.headers.get("User-Agent", "unknown").split("/")[0] or "unknown")
        store = api.store
        if method in ("GET", "HEAD"):
            if query.get("watch") in ("true", "1") or watch_path:
                fsel = query.get("fieldSelector")
                if name:
                    fsel = f"metadata.name={name}" + ("," + fsel if fsel else "")
                return self._watch(res, ns, query, fsel)
            if name is None:
                return self._list(res, ns, query)
            if sub == "scale":
                return self._json(200, store.scale(res, ns, name))
            if sub == "log":
                store.get(res, ns, name)
                return self._send(200, f"lab: no container logs for pod {ns}/{name}\n".encode(), "text/plain")
            entry = store.get(res, ns, name)
            if "as=Table" in self.headers.get("Accept", ""):
                return self._json(200, _table(res, [json.loads(store.render(res, entry))], {"resourceVersion": entry.obj["metadata"]["resourceVersion"]}))
            return self._send(200, store.render(res, entry))
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if method == "POST" and sub == "eviction":
            body = self._parse_body(raw, content_type) or {}
            if not isinstance(body, dict):
                raise ApiError(400, "the Eviction body must be an object")
            return self._json(201, store.evict(res, ns, name, body, dry_run=dry_run))
        if method == "POST":
            if name is not None:
                raise ApiError(405, f"the server does not allow this method on the requested resource ({method} {path})")
            body = self._parse_body(raw, content_type)
            obj = store.create(res, ns, body, dry_run=dry_run, manager=manager)
            return self._json(201, store.render_obj(res, obj))
        if method == "PUT":
            if name is None:
                raise ApiError(405, f"the server does not allow this method on the requested resource ({method} {path})")
            body = self._parse_body(raw, content_type)
            obj = store.update(res, ns, name, body, subresource=sub, dry_run=dry_run, manager=manager)
            return self._json(200, store.render_obj(res, obj))
        if method == "PATCH":
            if name is None:
                raise ApiError(405, f"the server does not allow this method on the requested resource ({method} {path})")
            patch_type = PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                                    f"{', '.join(PATCH_TYPES)}")
            body = self._parse_body(raw, "yaml" if patch_type == "apply" else "json")
            if body is None:
                raise ApiError(400, "the patch body is empty")
            force = query.get("force") in ("true", "1")
            obj, created = store.patch(res, ns, name, patch_type, body, subresource=sub, dry_run=dry_run,
                                       manager=query.get("fieldManager") or (None if patch_type == "apply" else manager), force=force)
            return self._json(201 if created else 200, store.render_obj(res, obj))
        if method == "DELETE":
            body = self._parse_body(raw, "json") or {}
            if not isinstance(body, dict):
                raise ApiError(400, "DeleteOptions must be an object")
            options = dict(body)
            if query.get("propagationPolicy"):
                options["propagationPolicy"] = query["propagationPolicy"]
            if query.get("orphanDependents"):
                options["orphanDependents"] = query["orphanDependents"] == "true"
            dry_run = dry_run or body.get("dryRun") == ["All"]
            if name is None:
                if sub is not None:
                    raise ApiError(405, "the server does not allow this method on the requested resource")
                items = store.delete_collection(res, ns, label_selector=query.get("labelSelector"), field_selector=query.get("fieldSelector"),
                                                options=options, dry_run=dry_run)
                return self._json(200, {"kind": res.list_kind, "apiVersion": res.api_version,
                                        "metadata": {"resourceVersion": str(store.rv)},
                                        "items": [store.render_obj(res, o) for o in items]})
            obj = store.delete(res, ns, name, options, dry_run)
            return self._json(200, store.render_obj(res, obj))
        raise ApiError(405, f"the server does not allow this method on the requested resource ({method} {path})")

    def _list(self, res: Resource, ns: str | None, query: dict) -> None:
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise ApiError(400, f"invalid limit {query.get('limit')!r}") from None
        items, rv, cont, remaining = self.server.api.store.list(res, ns, label_selector=query.get("labelSelector"), field_selector=query.get("fieldSelector"),
                                                                limit=limit, continue_token=query.get("continue"))
        meta = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        if "as=Table" in self.headers.get("Accept", ""):
            return self._json(200, _table(res, [json.loads(i) for i in items], meta))
        head = b'{"kind":"' + res.list_kind.encode() + b'","apiVersion":"' + res.api_version.encode() + b'","metadata":' + dumps(meta) + b',"items":['
        self._send(200, head + b",".join(items) + b"]}")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, res: Resource, ns: str | None, query: dict, field_selector: str | None) -> None:
        store = self.server.api.store
        try:
            timeout = float(query.get("timeoutSeconds") or 1800)
        except ValueError:
            raise ApiError(400, f"invalid timeoutSeconds {query.get('timeoutSeconds')!r}") from None
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial, last, matches, gone = store.watch_start(res, ns, query.get("resourceVersion"), label_selector=query.get("labelSelector"),
                                                          field_selector=field_selector)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        as_table = "as=Table" in self.headers.get("Accept", "")

        def encode(lines: list[bytes]) -> bytes:
            if not as_table:
                return b"".join(lines)
            out = []
            for line in lines:
                ev = json.loads(line)
                if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    ev["object"] = _table(res, [ev["object"]], {"resourceVersion": ev["object"]["metadata"].get("resourceVersion", "")})
                out.append(dumps(ev) + b"\n")
            return b"".join(out)

        if gone is not None:
            self._write_chunk(b'{"type":"ERROR","object":' + dumps(gone.status()) + b"}\n")
            self._write_chunk(b"")
            return
        if initial:
            self._write_chunk(encode(initial))
        else:
            self.wfile.flush()
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with store.cond:
                    events, last = store.events_after(res, last, matches)
                    if not events:
                        store.cond.wait(min(remaining, 1.0, self.server.api.bookmark_interval if bookmarks else 1.0))
                        events, last = store.events_after(res, last, matches)
                if events:
                    self._write_chunk(encode(events))
                    idle_since = time.monotonic()
                elif bookmarks and time.monotonic() - idle_since > self.server.api.bookmark_interval:
                    mark = {"kind": res.kind, "apiVersion": res.api_version, "metadata": {"resourceVersion": str(last)}}
                    self._write_chunk(b'{"type":"BOOKMARK","object":' + dumps(mark) + b"}\n")
                    idle_since = time.monotonic()
                if store._stopping:
                    break
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


__all__ = ["ApiServer", "now"]
