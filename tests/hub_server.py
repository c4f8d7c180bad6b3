"""A loopback fake of the Hugging Face Hub: the endpoints ``huggingface_hub`` and stock ``datasets`` call.

Real HTTP on 127.0.0.1 (``ThreadingHTTPServer``), so the real clients run unpatched: set ``HF_ENDPOINT`` to
``server.url`` and ``HF_HUB_DISABLE_XET=1`` before importing them (see docs/datasets-behaviour.md, "Hubs other than huggingface.co").

Served: repo info (``GET /api/datasets/{repo}[/revision/{rev}]``), ``POST /api/repos/create``, branch create,
``preupload`` (``*.parquet`` and files over 1 MB go to LFS), LFS batch + ``PUT /_lfs/{oid}``,
``POST /api/validate-yaml``, NDJSON ``commit``, ``tree`` and ``paths-info`` listings, and ``resolve`` with
``HEAD`` and ``Range``. State lives in memory, with byte counters of what was uploaded (``bytes_in``) and
downloaded (``bytes_out``); every request is recorded (method, path, whether a token was
sent) for assertions, never the token itself.

Fault injection for tests: ``fail_commits=n`` answers the next ``n`` commits with HTTP 500, and
``echo_auth_in_errors=True`` puts the Authorization header into error bodies (to prove the client side
scrubs tokens from exceptions).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Entry:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def listing(self, path: str) -> dict:
        d = {"type": "file", "path": path, "size": len(self.data), "oid": git_blob_sha1(self.data)}
        if self.lfs:
            d["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": 134}
        return d


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, Entry]] = field(default_factory=dict)  # sha -> snapshot

    def snapshot(self, rev: str) -> tuple[str, dict[str, Entry]] | None:
        rev = unquote(rev)
        sha = self.branches.get(rev, rev)
        return (sha, self.commits[sha]) if sha in self.commits else None


@dataclass
class Request:
    method: str
    path: str
    authorized: bool


class HubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.commits: list[dict] = []  # {"repo", "branch", "added": [...], "deleted": [...]}
        self.fail_commits = 0
        self.allow_commits: int | None = None  # when set: this many commits succeed, then one fails
        self.echo_auth_in_errors = False
        self.bytes_in = 0  # request bodies received (uploads: LFS PUTs, commits with inline files)
        self.bytes_out = 0  # file bytes served by ``resolve`` (downloads, whole or ranged)

    def new_sha(self, seed: str) -> str:
        return hashlib.sha1(f"{seed}{time.time_ns()}{len(self.commits)}".encode()).hexdigest()

    def create(self, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_id, private)
        sha = self.new_sha(repo_id)
        repo.commits[sha] = {".gitattributes": Entry(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", False)}
        repo.branches["main"] = sha
        self.repos[repo_id] = repo
        return repo


_REPO = r"(?P<repo>[^/]+/[^/]+)"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    # -- plumbing ------------------------------------------------------------------------------------
    def log_message(self, format: str, *args) -> None:  # quiet; requests are recorded in state instead
        pass

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return self.server.url

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                with self.state.lock:
                    self.state.bytes_in += size
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        with self.state.lock:
            self.state.bytes_in += len(data)
        return data

    def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
              head_only: bool = False) -> None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        if self.state.echo_auth_in_errors:
            message += f" (request auth: {self.headers.get('Authorization')})"
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _record(self) -> None:
        with self.state.lock:
            self.state.requests.append(Request(self.command, urlsplit(self.path).path,
                                               bool(self.headers.get("Authorization"))))

    def _route(self, routes: list[tuple[str, object]]) -> None:
        self._record()
        url = urlsplit(self.path)
        for pattern, fn in routes:
            m = re.fullmatch(pattern, url.path)
            if m:
                try:
                    fn(m, parse_qs(url.query))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
        self._error(404, "NotFound", f"no route for {self.command} {url.path}")

    def do_GET(self) -> None:
        self._route([
            (rf"/api/datasets/{_REPO}(?:/revision/(?P<rev>.+))?", self.repo_info),
            (rf"/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self.tree),
            (rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
            (r"/api/whoami-v2", lambda m, q: self._send(200, {"name": "tester", "type": "user", "orgs": []})),
        ])

    def do_HEAD(self) -> None:
        self._route([(rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
                      lambda m, q: self.resolve(m, q, head_only=True))])

    def do_POST(self) -> None:
        self._route([
            (r"/api/repos/create", self.create_repo),
            (r"/api/validate-yaml", lambda m, q: (self._body(), self._send(200, {"errors": [], "warnings": []}))),
            (rf"/api/datasets/{_REPO}/preupload/(?P<rev>.+)", self.preupload),
            (rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", self.lfs_batch),
            (rf"/api/datasets/{_REPO}/commit/(?P<rev>.+)", self.commit),
            (rf"/api/datasets/{_REPO}/paths-info/(?P<rev>.+)", self.paths_info),
            (rf"/api/datasets/{_REPO}/branch/(?P<branch>.+)", self.create_branch),
        ])

    def do_PUT(self) -> None:
        self._route([(r"/_lfs/(?P<oid>[0-9a-f]{64})", self.lfs_put)])

    # -- endpoints -----------------------------------------------------------------------------------
    def _repo(self, m: re.Match) -> Repo | None:
        repo = self.state.repos.get(m.group("repo"))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
        return repo

    def _snap(self, m: re.Match) -> tuple[Repo, str, dict[str, Entry]] | None:
        """(repo, commit sha, files) of the match's repo at its revision; None after answering 404."""
        repo = self._repo(m)
        if repo is None:
            return None
        rev = m.group("rev")
        snap = repo.snapshot(rev or "main")
        if snap is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo, *snap

    def repo_info(self, m: re.Match, q: dict) -> None:
        got = self._snap(m)
        if got is None:
            return
        repo, sha, files = got
        self._send(200, {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": sha, "private": repo.private, "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z", "siblings": [{"rfilename": p} for p in sorted(files)],
        })

    def create_repo(self, m: re.Match, q: dict) -> None:
        body = json.loads(self._body() or b"{}")
        repo_id = f"{body.get('organization') or 'tester'}/{body['name']}"
        with self.state.lock:
            if repo_id in self.state.repos:
                self._error(409, "RepoExists", "You already created this dataset repo")
                return
            self.state.create(repo_id, bool(body.get("private")) or body.get("visibility") == "private")
        self._send(200, {"url": f"{self.base}/datasets/{repo_id}", "name": repo_id})

    def create_branch(self, m: re.Match, q: dict) -> None:
        self._body()
        repo = self._repo(m)
        if repo is None:
            return
        branch = unquote(m.group("branch"))
        with self.state.lock:
            if branch in repo.branches:
                self._error(409, "BranchExists", "Reference already exists")
                return
            repo.branches[branch] = repo.branches["main"]
        self._send(200, {})

    def preupload(self, m: re.Match, q: dict) -> None:
        body = json.loads(self._body())
        if self._repo(m) is None:
            return
        files = [{"path": f["path"], "shouldIgnore": False,
                  "uploadMode": "lfs" if f["path"].endswith(".parquet") or f["size"] > 1_000_000 else "regular"}
                 for f in body["files"]]
        self._send(200, {"files": files, "commitOid": None})

    def lfs_batch(self, m: re.Match, q: dict) -> None:
        body = json.loads(self._body())
        objects = []
        for o in body["objects"]:
            obj = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.state.lfs:
                obj["actions"] = {"upload": {"href": f"{self.base}/_lfs/{o['oid']}", "header": {}}}
            objects.append(obj)
        self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_put(self, m: re.Match, q: dict) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != m.group("oid"):
            self._error(400, "BadOid", "sha256 mismatch")
            return
        with self.state.lock:
            self.state.lfs[m.group("oid")] = data
        self._send(200, {})

    def commit(self, m: re.Match, q: dict) -> None:
        lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
        repo = self._repo(m)
        if repo is None:
            return
        with self.state.lock:
            if self.state.allow_commits is not None:
                if self.state.allow_commits == 0:
                    self.state.allow_commits = None
                    self.state.fail_commits += 1
                else:
                    self.state.allow_commits -= 1
            if self.state.fail_commits > 0:
                self.state.fail_commits -= 1
                self._error(500, "InternalError", "injected commit failure")
                return
            branch = unquote(m.group("rev"))
            if branch not in repo.branches:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
                return
            files = dict(repo.commits[repo.branches[branch]])
            added, deleted = [], []
            for line in lines:
                key, val = line["key"], line["value"]
                if key == "header" and val.get("parentCommit") not in (None, repo.branches[branch]):
                    self._error(412, "PreconditionFailed", "parent commit is not the head")
                    return
                if key == "file":
                    files[val["path"]] = Entry(base64.b64decode(val["content"]), False)
                    added.append(val["path"])
                elif key == "lfsFile":
                    data = self.state.lfs.get(val["oid"])
                    if data is None:
                        self._error(422, "LfsMissing", f"LFS object {val['oid']} was not uploaded")
                        return
                    files[val["path"]] = Entry(data, True)
                    added.append(val["path"])
                elif key == "deletedFile":
                    files.pop(val["path"], None)
                    deleted.append(val["path"])
                elif key == "deletedFolder":
                    prefix = val["path"].rstrip("/") + "/"
                    for p in [p for p in files if p.startswith(prefix)]:
                        files.pop(p)
                        deleted.append(p)
            sha = self.state.new_sha(repo.repo_id)
            repo.commits[sha] = files
            repo.branches[branch] = sha
            self.state.commits.append({"repo": repo.repo_id, "branch": branch, "added": added, "deleted": deleted})
        self._send(200, {"success": True, "commitOid": sha, "pullRequestUrl": None,
                         "commitUrl": f"{self.base}/datasets/{repo.repo_id}/commit/{sha}"})

    def _list(self, files: dict[str, Entry], prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        out, dirs = [], set()
        for path in sorted(files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = "/".join(([prefix] if prefix else []) + parts[:i])
                if d not in dirs and (recursive or i == 1):
                    dirs.add(d)
                    out.append({"type": "directory", "path": d, "size": 0, "oid": hashlib.sha1(d.encode()).hexdigest()})
            if recursive or len(parts) == 1:
                out.append(files[path].listing(path))
        return out

    def tree(self, m: re.Match, q: dict) -> None:
        got = self._snap(m)
        if got is None:
            return
        _, _, files = got
        path = unquote(m.group("path") or "")
        if path and path in files:
            self._send(200, [files[path].listing(path)])
            return
        if path and not any(p.startswith(path.strip("/") + "/") for p in files):
            self._error(404, "EntryNotFound", f"{path} does not exist on {m.group('rev')}")
            return
        self._send(200, self._list(files, path, q.get("recursive", ["false"])[0].lower() == "true"))

    def paths_info(self, m: re.Match, q: dict) -> None:
        raw = self._body()
        ctype = self.headers.get("Content-Type", "")
        form = json.loads(raw) if "json" in ctype else {k: v for k, v in parse_qs(raw.decode()).items()}
        paths = form.get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        got = self._snap(m)
        if got is None:
            return
        _, _, files = got
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(files[p].listing(p))
            elif any(f.startswith(p + "/") for f in files) or p == "":
                out.append({"type": "directory", "path": p, "size": 0, "oid": hashlib.sha1(p.encode()).hexdigest()})
        self._send(200, out)

    def resolve(self, m: re.Match, q: dict, head_only: bool = False) -> None:
        got = self._snap(m)
        if got is None:
            return
        _, sha, files = got
        path = unquote(m.group("path"))
        entry = files.get(path)
        if entry is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on {m.group('rev')}")
            return
        data = entry.data
        etag = entry.sha256 if entry.lfs else git_blob_sha1(data)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": len(data)})
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if rng and not head_only:
            a = int(rng.group(1)) if rng.group(1) else max(0, len(data) - int(rng.group(2)))
            b = int(rng.group(2)) if rng.group(1) and rng.group(2) else len(data) - 1
            b = min(b, len(data) - 1)
            if a >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            headers["Content-Range"] = f"bytes {a}-{b}/{len(data)}"
            with self.state.lock:
                self.state.bytes_out += b + 1 - a
            self._send(206, data[a : b + 1], headers)
            return
        if head_only:
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        with self.state.lock:
            self.state.bytes_out += len(data)
        self._send(200, data, headers)


class HubServer(ThreadingHTTPServer):
    """``with HubServer() as hub: ...`` serves on ``hub.url`` (127.0.0.1, a free port) in a daemon thread."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = HubState()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HubServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        snap = self.state.repos[repo_id].snapshot(rev)
        assert snap is not None
        return {p: e.data for p, e in snap[1].items()}


if __name__ == "__main__":  # manual use: python tests/hub_server.py
    with HubServer() as hub:
        print(hub.url, flush=True)
        threading.Event().wait()
