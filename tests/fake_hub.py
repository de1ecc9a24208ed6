"""A fake Hugging Face hub on loopback, for model installs offline (``HF_ENDPOINT`` points at
it): the hub's model API (``/api/models/<repo>[/revision/<rev>]``, with file sizes) and its file
downloads (``/<repo>/resolve/<rev>/<path>``: HEAD and GET, the commit and ETag headers
huggingface_hub reads, ``Range`` for resumes), gated repositories (401 ``GatedRepo`` without
the token), the hub's 404 error codes, and plain file URLs (``/files/<name>``). A test can cut
a file's first answer half-way (``cut_once``) and slow every answer down (``bytes_per_second``)
to watch progress and cancel; every request is recorded."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TOKEN = "hf_test_token_for_the_fake_hub"


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    license: str = "apache-2.0"
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    #: The files the hub says are LFS files, with the SHA-256 it reports for each (the real hub
    #: reports its content's; a test may give another to see the install refuse the file).
    lfs: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    range: str | None
    authorized: bool


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    plain: dict[str, bytes] = field(default_factory=dict)  # /files/<name>
    cut_once: set[str] = field(default_factory=set)  # paths whose next GET is cut half-way
    bytes_per_second: float | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""  # the hub
    files_url: str = ""  # another host (port) serving the plain files: not the hub

    def add_folder(self, repo: str, folder: Path, **kwargs) -> Repo:
        files = {
            str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }
        self.repos[repo] = Repo(files, **kwargs)
        return self.repos[repo]

    def gets(self, suffix: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path.endswith(suffix)]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _authorized(self) -> bool:
            return self.headers.get("Authorization", "") == f"Bearer {TOKEN}"

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.seen.append(Seen(self.command, path, self.headers.get("Range"), self._authorized()))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"]:
                return self._model_info("/".join(parts[2:4]))
            if parts[0] == "files" and len(parts) == 2 and parts[1] in hub.plain:
                data = hub.plain[parts[1]]
                etag = hashlib.sha256(data).hexdigest()[:16]  # as a web server's, per content
                return self._file(path, data, etag=etag, commit=None)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id = "/".join(parts[:2])
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if repo.gated and not self._authorized():
                    return self._error(401, "GatedRepo", "Access to this model is restricted.")
                data = repo.files.get("/".join(parts[4:]))
                if data is None:
                    return self._error(404, "EntryNotFound", "Entry not found")
                etag = hashlib.sha256(data).hexdigest()
                return self._file(path, data, etag=etag, commit=repo.sha)
            return self._error(404, "RepoNotFound", "Not found")

        def _model_info(self, repo_id: str) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            info = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.sha,
                "private": False,
                "disabled": False,
                "gated": "manual" if repo.gated else False,
                "tags": [],
                "cardData": {"license": repo.license},
                "siblings": [
                    {
                        "rfilename": name,
                        "size": len(data),
                        **(
                            {
                                "lfs": {
                                    "sha256": repo.lfs[name],
                                    "size": len(data),
                                    "pointerSize": 134,
                                }
                            }
                            if name in repo.lfs
                            else {}
                        ),
                    }
                    for name, data in repo.files.items()
                ],
            }
            body = json.dumps(info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _file(self, path: str, data: bytes, *, etag: str | None, commit: str | None) -> None:
            start = 0
            wanted = self.headers.get("Range", "")
            condition = self.headers.get("If-Range")
            if condition is not None and condition != f'"{etag}"':
                wanted = ""  # RFC 9110: another version than the client has, sent whole
            if wanted.startswith("bytes=") and wanted.endswith("-"):
                start = int(wanted[6:-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(206 if start else 200)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            if etag:
                self.send_header("ETag", f'"{etag}"')
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if self.command == "HEAD":
                return
            body = data[start:]
            if path in hub.cut_once:
                hub.cut_once.discard(path)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            block = 16 * 1024
            for offset in range(0, len(body), block):
                self.wfile.write(body[offset : offset + block])
                if hub.bytes_per_second:
                    self.wfile.flush()
                    time.sleep(block / hub.bytes_per_second)

    return Handler


def start(hub: FakeHub) -> list[ThreadingHTTPServer]:
    servers = []
    for attribute in ("url", "files_url"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        server.daemon_threads = True
        setattr(hub, attribute, f"http://127.0.0.1:{server.server_address[1]}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers
