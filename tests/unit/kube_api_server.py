"""Test fixture: a tiny real HTTP server speaking enough of the Kubernetes API for the kube.py unit tests.

It answers discovery (/version, /api, /api/v1, /apis, /apis/apps/v1), lists pods with limit/continue and
label/field selectors evaluated on the server, get/create/patch/delete of pods, and Status error bodies.
Every request is recorded (method, path, query, headers) so tests can check what the client sent.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CORE_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
    ],
}
APPS_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "apps/v1",
    "resources": [
        {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
    ],
}
DISCOVERY = {
    "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/api/v1": CORE_RESOURCES,
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
    ]},
    "/apis/apps/v1": APPS_RESOURCES,
}
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


def status_body(code, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": REASONS.get(code, "Unknown"), "code": code}


def _labels_match(labels, selector):
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


def _fields_match(obj, selector):
    for term in filter(None, (selector or "").split(",")):
        key, value = term.split("=", 1)
        current = obj
        for part in key.split("."):
            current = (current or {}).get(part)
        if current != value:
            return False
    return True


class KubeApiServer:
    """Start with ``KubeApiServer(token=...)``; ``url``, ``requests`` (list of dicts), ``pods`` (dict)."""

    def __init__(self, token=None):
        self.token = token
        self.requests = []
        self.pods = {}  # (namespace, name) -> object
        self.conflict_names = set()  # patching these answers 409
        # scripted answers, consumed in order: dicts with method, path, code and optional headers / query key;
        # the first matching one answers instead of dispatch (e.g. 429 with Retry-After, 503, 410 on a page)
        self.faults = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                parsed = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append({"method": self.command, "path": parsed.path, "query": query,
                                            "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode() if body else None})
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._reply(401, status_body(401, "Unauthorized"))
                fault = server._take_fault(self.command, parsed.path, query)
                if fault is not None:
                    return self._reply(fault["code"], status_body(fault["code"], "scripted"), fault.get("headers"))
                code, payload = server.dispatch(self.command, parsed.path, query, body)
                return self._reply(code, payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _take_fault(self, method, path, query):
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault["method"] == method and fault["path"] == path and (not fault.get("query") or fault["query"] in query):
                    return self.faults.pop(index)
        return None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_pod(self, namespace, name, labels=None, phase="Running"):
        self.pods[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}), "resourceVersion": "1"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": phase},
        }

    def requests_to(self, path, method="GET"):
        return [r for r in self.requests if r["path"] == path and r["method"] == method]

    def dispatch(self, method, path, query, body):
        if method == "GET" and path in DISCOVERY:
            return 200, DISCOVERY[path]
        parts = path.strip("/").split("/")
        # /api/v1/pods  or  /api/v1/namespaces/NS/pods[/NAME]
        if parts[:2] != ["api", "v1"]:
            return 404, status_body(404, "the server could not find the requested resource")
        rest = parts[2:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] == "pods":
            namespace = rest[1]
            rest = rest[2:]
        if not rest or rest[0] != "pods":
            return 404, status_body(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        if name is None and method == "GET":
            return self._list(namespace, query)
        if name is None and method == "POST":
            obj = json.loads(body)
            key = (namespace, obj["metadata"]["name"])
            if key in self.pods:
                return 409, status_body(409, f'pods "{key[1]}" already exists')
            obj["metadata"]["namespace"] = namespace
            if query.get("dryRun") != "All":
                self.pods[key] = obj
            return 201, obj
        key = (namespace, name)
        if key not in self.pods:
            return 404, status_body(404, f'pods "{name}" not found')
        if method == "GET":
            return 200, self.pods[key]
        if method == "PATCH":
            if name in self.conflict_names:
                return 409, status_body(409, f'Operation cannot be fulfilled on pods "{name}": the object has been modified; '
                                             'please apply your changes to the latest version and try again')
            patch = json.loads(body)
            obj = json.loads(json.dumps(self.pods[key]))
            obj["metadata"]["labels"].update((patch.get("metadata") or {}).get("labels") or {})
            if query.get("dryRun") != "All":
                self.pods[key] = obj
            return 200, obj
        if method == "DELETE":
            obj = self.pods[key] if query.get("dryRun") == "All" else self.pods.pop(key)
            return 200, obj
        return 405, status_body(405, "method not allowed")

    def _list(self, namespace, query):
        if query.get("labelSelector") == "bad selector!":
            return 400, status_body(400, 'unable to parse requirement: invalid label key "bad selector!"')
        items = [pod for (ns, _name), pod in sorted(self.pods.items())
                 if (namespace is None or ns == namespace)
                 and _labels_match(pod["metadata"]["labels"], query.get("labelSelector"))
                 and _fields_match(pod, query.get("fieldSelector"))]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items)
        page = items[start:start + limit]
        meta = {"resourceVersion": "10"}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta,
                     "items": [{k: v for k, v in pod.items() if k not in ("apiVersion", "kind")} for pod in page]}
