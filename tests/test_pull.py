"""Black-box tests of `sembed pull`, `sembed models` and `-m ORG/NAME`
(issue 13) against a loopback fake Hugging Face hub written here.

The fake hub speaks the protocol huggingface_hub and @huggingface/hub use:
  GET  /api/models/ORG/NAME/revision/REV       {"sha", "siblings": [{"rfilename"}]}
  GET  /api/models/ORG/NAME/tree/REV           [{"type", "path", "oid", "size", "lfs"}]
  POST /api/models/ORG/NAME/paths-info/REV     the same for the paths asked
  HEAD|GET /ORG/NAME/resolve/REV/PATH          X-Repo-Commit; a small file: 200 with
                                               ETag (git's blob sha1); an LFS file: 302
                                               to the CDN (a second port) with
                                               X-Linked-Etag (sha256), X-Linked-Size
  GET  (CDN) /blobs/SHA256                     Range, ETag
A gated repository answers 401 (X-Error-Code: GatedRepo) without the right
token; unknown repositories and revisions 404 (RepoNotFound,
RevisionNotFound). Faults are injected per test: 500s, a connection cut
mid-file, a throttled CDN (for kill -9), corrupt bytes once. Both servers
count connections (offline mode must make none) and log every request.

    /usr/bin/python3 tests/test_pull.py build/sembed [--bench-memory]

--bench-memory also pulls a 1.5 GB file served from a sparse file and
reports the pull's peak RSS (not part of make test: it takes a while).
"""
import hashlib, http.server, json, os, shutil, signal, socketserver, subprocess, sys, tempfile, threading
import time, urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import SEMBED, check, report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "models")
HUB_CLIENT = os.path.join(HERE, "hub-client")
BENCH = "--bench-memory" in sys.argv
GOOD_TOKEN = "hf_good_token"

# ---- the repositories ----


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Blob:
    """One file of a commit: bytes in memory, or a path (the sparse bench file)."""

    def __init__(self, data=None, path=None, lfs=None):
        self.data, self.path = data, path
        self.size = len(data) if data is not None else os.path.getsize(path)
        self.lfs = lfs if lfs is not None else (path is not None or self.size > 1_000_000)
        if path is not None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            self.sha256 = h.hexdigest()
        else:
            self.sha256 = hashlib.sha256(data).hexdigest()
        pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" %
                   (self.sha256, self.size)).encode()
        self.oid = git_sha1(pointer) if self.lfs else git_sha1(data)

    def read(self, start, end):
        """Bytes [start, end)."""
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


LFS_EXT = (".safetensors", ".bin", ".onnx", ".h5", ".msgpack", ".ot")


def folder_files(d):
    """path -> bytes of a fixture folder (symlinks followed)."""
    out = {}
    for root, _, files in os.walk(d, followlinks=True):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def make_repo(files, gated=False):
    blobs = {p: Blob(data=b, lfs=p.endswith(LFS_EXT)) for p, b in files.items()}
    sha = hashlib.sha1(json.dumps(sorted((p, b.oid) for p, b in blobs.items())).encode()).hexdigest()
    return {"commits": {sha: blobs}, "refs": {"main": sha}, "gated": gated}


EXTRA = {  # what a hub repository has beside the model, never fetched by default
    "README.md": b"# a model card\n",
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "onnx/model.onnx": b"\x08\x07onnx" * 100,
    "openvino/openvino_model.xml": b"<xml/>",
    "tf_model.h5": b"\x89HDF" * 10,
    "flax_model.msgpack": b"\x81" * 30,
    "pytorch_model.bin": b"PK\x03\x04 not needed, there are safetensors",
}
EN = folder_files(os.path.join(FIX, "en-mean-norm"))
EN_MODEL = {p: b for p, b in EN.items() if p != "expected.jsonl"}
ZHBIN = folder_files(os.path.join(FIX, "zh-cls-dense-f16-bin"))
ZHBIN_MODEL = {p: b for p, b in ZHBIN.items() if p != "expected.jsonl"}

REPOS = {
    "test-org/en-mean-norm": make_repo({**EN, **EXTRA}),
    "test-org/gated": make_repo(EN_MODEL, gated=True),
    "test-org/zh-bin": make_repo({**ZHBIN_MODEL, "README.md": b"x"}),
    "test-org/js-side": make_repo(EN_MODEL),
    "test-org/c-side": make_repo(EN_MODEL),
    "test-org/evil": make_repo({"config.json": b"{}", "../escape.json": b"{}"}),
}
RENAMED = {"old-org/c-side": "test-org/c-side"}
# a second revision of en-mean-norm: a tag pointing at the same commit
REPOS["test-org/en-mean-norm"]["refs"]["v1.0"] = REPOS["test-org/en-mean-norm"]["refs"]["main"]

# ---- the servers ----

STATE = {"lock": threading.Lock(), "log": [], "connections": 0, "faults": {}}


def fault(name, default=None):
    with STATE["lock"]:
        return STATE["faults"].get(name, default)


def take_fault(name):
    """Consumes one count of a counted fault; True when it fires."""
    with STATE["lock"]:
        n = STATE["faults"].get(name, 0)
        if n:
            STATE["faults"][name] = n - 1
            return True
        return False


def reset(**faults):
    with STATE["lock"]:
        STATE["log"].clear()
        STATE["connections"] = 0
        STATE["faults"] = dict(faults)


def log():
    with STATE["lock"]:
        return list(STATE["log"])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakehub"

    def setup(self):
        super().setup()
        with STATE["lock"]:
            STATE["connections"] += 1

    def log_message(self, *a):
        pass

    def record(self):
        with STATE["lock"]:
            STATE["log"].append({"server": self.server.name, "method": self.command, "path": self.path,
                                 "range": self.headers.get("Range"), "auth": self.headers.get("Authorization")})

    def plain(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, msg):
        self.plain(status, json.dumps({"error": msg}).encode(),
                   {"X-Error-Code": code, "X-Error-Message": msg, "Content-Type": "application/json"})

    def send_blob(self, blob, headers, cdn):
        """200 or 206 (Range) with the blob's bytes; the CDN's faults apply."""
        size = blob.size
        start, end = 0, size
        rng = self.headers.get("Range")
        status = 200
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a) if a else 0
            end = min(int(b) + 1, size) if b else size
            if start >= size:
                self.plain(416, b"", {"Content-Range": "bytes */%d" % size})
                return
            status = 206
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, size))
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = fault("cut_once") if cdn else None
        if cut is not None:
            with STATE["lock"]:
                STATE["faults"].pop("cut_once", None)
        corrupt = cdn and take_fault("corrupt_once")
        rate = fault("throttle") if cdn else None
        pos = start
        try:
            while pos < end:
                n = min(end - pos, 65536)
                chunk = blob.read(pos, pos + n)
                if corrupt and pos == start:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                if cut is not None and pos + n > start + cut:
                    self.wfile.write(chunk[:start + cut - pos])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)
                pos += n
                if rate:
                    time.sleep(n / rate)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self.do_GET()

    def do_GET(self):
        self.record()
        path = urllib.parse.urlsplit(self.path).path
        if self.server.name == "cdn":
            return self.cdn(path)
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            return self.api(parts[2] + "/" + parts[3], parts[4], parts[5])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]))
        self.error(404, "EntryNotFound", "no route")

    def repo(self, repo_id, rev):
        """(repo, commit sha, blobs) or None after answering an error."""
        r = REPOS.get(repo_id)
        if r is None:
            self.error(404, "RepoNotFound", "Repository Not Found for url: %s" % self.path)
            return None
        if r["gated"] and self.headers.get("Authorization") != "Bearer " + GOOD_TOKEN:
            self.error(401, "GatedRepo", "Access to model %s is restricted. You must have access to it and be "
                       "authenticated to access it. Please log in." % repo_id)
            return None
        sha = r["refs"].get(rev, rev if rev in r["commits"] else None)
        if sha is None:
            self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            return None
        return r, sha, r["commits"][sha]

    def api(self, repo_id, kind, rev):
        if take_fault("api_500"):
            return self.plain(500, b"internal error")
        got = self.repo(RENAMED.get(repo_id, repo_id), rev)
        if not got:
            return
        _, sha, blobs = got
        if kind == "revision":
            body = {"_id": "x", "id": repo_id, "modelId": repo_id, "sha": sha,
                    "siblings": [{"rfilename": p} for p in sorted(blobs)]}
        elif kind in ("tree", "paths-info"):
            want = sorted(blobs)
            if kind == "paths-info":
                n = int(self.headers.get("Content-Length") or 0)
                want = json.loads(self.rfile.read(n) or b"{}").get("paths", [])
            body = []
            dirs = sorted({os.path.dirname(p) for p in blobs if "/" in p})
            if kind == "tree":
                body += [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in dirs]
            for p in want:
                if p not in blobs:
                    continue
                b = blobs[p]
                e = {"type": "file", "path": p, "oid": b.oid, "size": b.size,
                     "lastCommit": {"id": sha, "title": "x", "date": "2026-11-30T00:00:00.000Z"}}
                if b.lfs:
                    e["lfs"] = {"oid": b.sha256, "size": b.size, "pointerSize": 130}
                body.append(e)
        else:
            return self.error(404, "EntryNotFound", "no route")
        self.plain(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def resolve(self, repo_id, rev, path):
        if take_fault("resolve_500"):
            return self.plain(500, b"internal error")
        if repo_id in RENAMED:  # a renamed repository: a relative redirect without etags
            return self.plain(307, b"", {"Location": "/%s/resolve/%s/%s" % (RENAMED[repo_id], rev, path)})
        got = self.repo(repo_id, rev)
        if not got:
            return
        _, sha, blobs = got
        b = blobs.get(path)
        if b is None:
            return self.error(404, "EntryNotFound", "%s does not exist on %s" % (path, rev))
        h = {"X-Repo-Commit": sha, "ETag": '"%s"' % b.oid}
        if b.lfs:
            h.update({"X-Linked-Etag": '"%s"' % b.sha256, "X-Linked-Size": str(b.size),
                      "Location": "http://127.0.0.1:%d/blobs/%s?sig=1" % (CDN.port, b.sha256)})
            return self.plain(302, b"", h)
        self.send_blob(b, h, cdn=False)

    def cdn(self, path):
        if take_fault("cdn_500"):
            return self.plain(500, b"cdn error")
        if take_fault("cdn_429"):
            return self.plain(429, b"slow down")
        sha = path.rsplit("/", 1)[-1]
        for r in REPOS.values():
            for blobs in r["commits"].values():
                for b in blobs.values():
                    if b.lfs and b.sha256 == sha:
                        return self.send_blob(b, {"ETag": '"%s"' % sha}, cdn=True)
        self.plain(404, b"no such blob")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client killed on purpose (kill -9) resets its connection


def start(name):
    s = Server(("127.0.0.1", 0), Handler)
    s.name = name
    s.port = s.server_address[1]
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


HUB, CDN = start("hub"), start("cdn")
ENDPOINT = "http://127.0.0.1:%d" % HUB.port
TMP = tempfile.mkdtemp(prefix="sembed-pull-")


def env_for(cache, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    e.update({"HF_HUB_CACHE": cache, "HF_HOME": os.path.join(TMP, "hf-home"), "HF_ENDPOINT": ENDPOINT,
              "SEMBED_HUB_RETRY_MS": "20", "no_proxy": "*"})
    e.update(extra)
    return e


def sembed(cache, *args, input=None, **env):
    p = subprocess.run([SEMBED, *args], input=input, capture_output=True, env=env_for(cache, **env))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def repo_dir(cache, repo_id):
    return os.path.join(cache, "models--" + repo_id.replace("/", "--"))


def snapshot_files(snap):
    """path -> bytes of a snapshot folder."""
    return folder_files(snap)


def default_selection(files):
    """What the default selection must fetch of a repository's files."""
    skip_prefix = ("onnx/", "openvino/")
    skip = {"README.md", ".gitattributes", "tf_model.h5", "flax_model.msgpack", "expected.jsonl"}
    has_st = any(p.endswith(".safetensors") and "/" not in p for p in files)
    out = {}
    for p, b in files.items():
        if p.startswith(skip_prefix) or p in skip or (p == "pytorch_model.bin" and has_st):
            continue
        out[p] = b
    return out


TEXTS = b"A man is eating food.\nThe quick brown fox jumps over the lazy dog.\n"


def encode(cache, model, **env):
    return sembed(cache, "encode", "-m", model, input=TEXTS, **env)


# ---- the checks ----


def test_pull_files():
    """pull: byte-identical files, the default selection, the cache layout."""
    cache = os.path.join(TMP, "c1")
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "--token", "hf_other")
    repo = REPOS["test-org/en-mean-norm"]
    sha = repo["refs"]["main"]
    rd = repo_dir(cache, "test-org/en-mean-norm")
    snap = os.path.join(rd, "snapshots", sha)
    check("pull: exit 0, prints the snapshot folder", rc == 0 and out.strip() == snap, (rc, out, err))
    want = default_selection({**EN, **EXTRA})
    got = snapshot_files(snap) if os.path.isdir(snap) else {}
    check("pull: the files a sentence-transformers model needs, byte-identical", got == want,
          (sorted(got), sorted(want)))
    check("pull: onnx/, TF, Flax, README and pytorch_model.bin (beside safetensors) skipped",
          not any(p.startswith("onnx/") or p in EXTRA for p in got))
    blobs = repo["commits"][sha]
    links_ok = True
    for p in want:
        lp = os.path.join(snap, p)
        b = blobs[p]
        etag = b.sha256 if b.lfs else b.oid
        target = os.readlink(lp) if os.path.islink(lp) else None
        rel = "../" * (2 + p.count("/")) + "blobs/" + etag
        links_ok &= target == rel
    check("pull: snapshots/<commit>/<path> are relative symlinks to blobs/<etag> (sha256 for LFS, git sha1 else)",
          links_ok)
    ref = open(os.path.join(rd, "refs", "main")).read() if os.path.exists(os.path.join(rd, "refs", "main")) else ""
    check("pull: refs/main holds the commit, without a newline", ref == sha, repr(ref))
    check("pull: no .incomplete left", not any(f.endswith(".incomplete") for f in os.listdir(os.path.join(rd, "blobs"))))
    lg = log()
    cdn = [r for r in lg if r["server"] == "cdn"]
    hub = [r for r in lg if r["server"] == "hub"]
    check("pull: LFS files come from the CDN after the 302", len(cdn) == 1 and "safetensors" not in cdn[0]["path"]
          and cdn[0]["path"].startswith("/blobs/" + blobs["model.safetensors"].sha256), cdn)
    check("pull: the token goes to the hub, never to the CDN",
          all(r["auth"] == "Bearer hf_other" for r in hub) and all(r["auth"] is None for r in cdn), lg)
    check("pull: progress with bytes/s and ETA on stderr", "MB/s" in err and "ETA" in err and
          "model.safetensors" in err, err)

    # the cached model loads by name, offline, and encodes as its folder does
    reset()
    rc1, o1, e1 = encode(cache, "test-org/en-mean-norm", HF_HUB_OFFLINE="1")
    rc2, o2, e2 = encode(cache, os.path.join(FIX, "en-mean-norm"))
    check("-m ORG/NAME: offline from the cache, the same vectors as the folder", rc1 == 0 and rc2 == 0 and o1 == o2
          and o1.count("\n") == 2, (rc1, e1, rc2, e2))
    check("-m ORG/NAME offline: no connection", STATE["connections"] == 0, STATE["connections"])
    rc, out, err = sembed(cache, "info", "-m", "test-org/en-mean-norm")
    check("-m ORG/NAME cached: no connection even online", rc == 0 and STATE["connections"] == 0, (err, log()))

    # a second pull: nothing downloaded again
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm")
    check("pull again: nothing from the CDN, no GET of a file", rc == 0 and not [r for r in log() if r["server"] == "cdn"]
          and not [r for r in log() if r["method"] == "GET" and "/resolve/" in r["path"]], log())

    # offline, a pull of a cached model answers from the cache (snapshot_download's way)
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", HF_HUB_OFFLINE="1")
    check("offline pull of a cached model: its snapshot, no connection", rc == 0 and out.strip() == snap and
          STATE["connections"] == 0, (rc, out, err))

    # a tag: another ref to the same snapshot
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "--revision", "v1.0", "-q")
    check("pull --revision v1.0: refs/v1.0, the same snapshot", rc == 0 and out.strip() == snap and
          open(os.path.join(rd, "refs", "v1.0")).read() == sha and err == "", (rc, out, err))

    # sembed models: sizes
    rc, out, err = sembed(cache, "models", "--json")
    rows = [json.loads(l) for l in out.splitlines()]
    blob_bytes = sum(os.path.getsize(os.path.join(rd, "blobs", f)) for f in os.listdir(os.path.join(rd, "blobs")))
    check("models --json: the repository, its size (sum of blobs), snapshots, refs",
          rc == 0 and len(rows) == 1 and rows[0]["repo_id"] == "test-org/en-mean-norm" and
          rows[0]["size_bytes"] == blob_bytes and blob_bytes == sum(len(b) for b in want.values()) and
          rows[0]["snapshots"] == 1 and rows[0]["refs"] == "main,v1.0", (out, blob_bytes))
    rc, out, err = sembed(cache, "models")
    check("models: a line with the name and a human size", rc == 0 and out.startswith("test-org/en-mean-norm") and
          "4.7 MB" in out, out)
    return cache


def test_include_and_bin():
    cache = os.path.join(TMP, "c2")
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "--include", "*.json", "-I", "1_Pooling/*", "-q")
    got = snapshot_files(out.strip()) if rc == 0 else {}
    want = {p: b for p, b in {**EN, **EXTRA}.items() if p.endswith(".json")}
    check("pull --include: only the matching files ('*' crosses '/')", got == want, (rc, err, sorted(got)))
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "--include", "*.nothing", "-q")
    check("pull --include matching nothing: an error", rc == 1 and "none of its" in err and "--include" in err, err)
    # pytorch_model.bin when there are no safetensors (and 2_Dense's too)
    rc, out, err = sembed(cache, "pull", "test-org/zh-bin", "-q")
    got = snapshot_files(out.strip()) if rc == 0 else {}
    check("pull: pytorch_model.bin (top and 2_Dense) when there are no safetensors", got == ZHBIN_MODEL,
          (rc, err, sorted(got)))
    rc1, o1, _ = encode(cache, "test-org/zh-bin", HF_HUB_OFFLINE="1")
    rc2, o2, _ = encode(cache, os.path.join(FIX, "zh-cls-dense-f16-bin"))
    check("-m ORG/NAME: a .bin model with a Dense module encodes as its folder", rc1 == 0 and o1 == o2 and o1, (rc1, rc2))


def test_offline_and_errors():
    cache = os.path.join(TMP, "c3")
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", HF_HUB_OFFLINE="1")
    check("offline pull: an error saying offline", rc == 1 and "offline" in err and "HF_HUB_OFFLINE" in err, err)
    rc, out, err = encode(cache, "test-org/en-mean-norm", HF_HUB_OFFLINE="1")
    check("offline -m of an uncached model: no such folder, not in the cache", rc == 1 and "no such folder" in err
          and "not in the cache" in err, err)
    check("offline: no connection at all", STATE["connections"] == 0, STATE["connections"])

    rc, out, err = sembed(cache, "pull", "test-org/gated")
    check("401 gated: says gated and needs a token", rc == 1 and "gated" in err and "needs a token" in err and
          "HF_TOKEN" in err, err)
    rc, out, err = sembed(cache, "pull", "test-org/gated", HF_TOKEN="hf_wrong")
    check("401 with a token: the token was refused", rc == 1 and "token was refused" in err, err)
    rc, out, err = sembed(cache, "pull", "test-org/gated", "-q", HF_TOKEN=GOOD_TOKEN)
    check("gated with HF_TOKEN: pulled", rc == 0 and os.path.isfile(os.path.join(out.strip(), "model.safetensors")),
          err)
    os.makedirs(os.path.join(TMP, "hf-home2"), exist_ok=True)
    with open(os.path.join(TMP, "hf-home2", "token"), "w") as f:
        f.write(GOOD_TOKEN + "\n")
    rc, out, err = sembed(os.path.join(TMP, "c3b"), "pull", "test-org/gated", "-q",
                          HF_HOME=os.path.join(TMP, "hf-home2"))
    check("gated with the token file HF_HOME/token (huggingface-cli login's): pulled", rc == 0, err)

    rc, out, err = sembed(cache, "pull", "test-org/missing")
    check("404 repository: repository not found", rc == 1 and "repository not found" in err, err)
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "--revision", "nope")
    check("404 revision: revision 'nope' not found", rc == 1 and "revision 'nope' not found" in err, err)
    rc, out, err = sembed(cache, "pull", "not-a-repo-id")
    check("pull a name without ORG/: usage error", rc == 2 and "not a hub repository id" in err, err)
    bad = ["a/../b", "../x", "org/na--me", "org/.hidden", "-org/x", "org/x/y", "org/", "/x", "org/x y", "org/x-",
           "org./x"]
    res = [sembed(cache, "pull", "--", b) for b in bad]
    check("pull: names that are no repository id (.., --, leading . or -, 3 parts, blanks) are usage errors",
          all(r[0] == 2 and "not a hub repository id" in r[2] for r in res),
          [(b, r[0]) for b, r in zip(bad, res)])
    rc, out, err = sembed(cache, "pull", "Org_1/model.v2-small", "-q")
    check("pull: dots, digits, '_' and '-' are fine in a repository id (it reaches the hub)",
          rc == 1 and "repository not found" in err, err)
    rc, out, err = sembed(cache, "pull", "test-org/evil")
    check("a sibling path with '..' is refused, nothing written outside",
          rc == 1 and "safe relative path" in err and not os.path.exists(os.path.join(cache, "escape.json")) and
          not os.path.exists(os.path.join(repo_dir(cache, "test-org/evil"), "snapshots", "escape.json")), err)
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "--token", "hf_a\r\nX-Evil: 1")
    check("a token with CR/LF: refused (no header injection)", rc == 1 and "control character" in err and
          STATE["connections"] == 0, err)
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", HF_ENDPOINT="http://127.0.0.1:1")
    check("unreachable endpoint: cannot reach the hub, offline?", rc == 1 and "cannot reach the hub" in err, err)

    # -m of a missing folder: "no such folder", whether or not it looks like ORG/NAME
    rc, out, err = sembed(cache, "tokenize", "-m", os.path.join(TMP, "nope"), input=b"x\n")
    check("tokenize -m missing folder: no such folder", rc == 1 and "no such folder" in err and
          "no tokenizer.json" not in err, err)
    rc, out, err = sembed(cache, "encode", "-m", os.path.join(TMP, "nope"), input=b"x\n")
    check("encode -m missing folder: no such folder", rc == 1 and "no such folder" in err, err)
    rc, out, err = encode(cache, "test-org/missing")
    check("-m ORG/NAME that is neither a folder nor on the hub: says both", rc == 1 and "no such folder" in err
          and "repository not found" in err, err)


def test_first_use_downloads():
    cache = os.path.join(TMP, "c4")
    reset()
    rc1, o1, e1 = encode(cache, "test-org/c-side")
    rc2, o2, _ = encode(cache, os.path.join(FIX, "en-mean-norm"))
    check("-m ORG/NAME downloads on first use, then encodes", rc1 == 0 and o1 == o2 and
          os.path.isdir(repo_dir(cache, "test-org/c-side")) and "ETA" in e1, (rc1, e1))


SELECTION = {  # a repository with every kind of file; True: the default selection takes it
    "modules.json": True, "config.json": True, "config_sentence_transformers.json": True,
    "sentence_bert_config.json": True, "tokenizer.json": True, "tokenizer_config.json": True,
    "special_tokens_map.json": True, "vocab.txt": True, "sentencepiece.bpe.model": True, "merges.txt": True,
    "added_tokens.json": True, "model.safetensors.index.json": True, "model-00001-of-00002.safetensors": True,
    "model-00002-of-00002.safetensors": True, "pytorch_model.bin.index.json": False,
    "pytorch_model-00001-of-00002.bin": False, "1_Pooling/config.json": True, "2_Dense/config.json": True,
    "2_Dense/pytorch_model.bin": True, "3_Normalize/.keep": False, "onnx/model.onnx": False,
    "onnx/config.json": False, "openvino/openvino_model.xml": False, "tf_model.h5": False,
    "flax_model.msgpack": False, "rust_model.ot": False, "README.md": False, "train_script.py": False,
    "checkpoint-500/model.safetensors": False, "data_config.json": False, "1_Pooling/README.md": False,
}
REPOS["test-org/selection"] = make_repo({p: p.encode() for p in SELECTION})


def test_selection():
    cache = os.path.join(TMP, "c4c")
    rc, out, err = sembed(cache, "pull", "test-org/selection", "-q")
    got = sorted(snapshot_files(out.strip())) if rc == 0 else []
    want = sorted(p for p, take in SELECTION.items() if take)
    check("default selection: config, modules, tokenizer, module folders, sharded safetensors; not onnx/, "
          "openvino/, TF, Flax, rust, .bin beside safetensors, checkpoints, READMEs", got == want,
          (rc, err, sorted(set(got) ^ set(want))))


def test_concurrent():
    """Two pulls of one model at once: huggingface_hub's lock file makes one wait; one download."""
    cache = os.path.join(TMP, "c4d")
    reset(throttle=8_000_000)
    ps = [subprocess.Popen([SEMBED, "pull", "test-org/en-mean-norm", "-q"], env=env_for(cache),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate() for p in ps]
    cdn = [r for r in log() if r["server"] == "cdn"]
    snap = outs[0][0].decode().strip()
    check("two pulls at once: both succeed, the blob downloaded once, identical",
          all(p.returncode == 0 for p in ps) and len(cdn) == 1 and
          snapshot_files(snap) == default_selection({**EN, **EXTRA}) and
          os.path.exists(os.path.join(cache, ".locks", "models--test-org--en-mean-norm")), (outs, cdn))


def test_renamed():
    cache = os.path.join(TMP, "c4b")
    reset()
    rc, out, err = sembed(cache, "pull", "old-org/c-side", "-q")
    got = snapshot_files(out.strip()) if rc == 0 else {}
    check("a renamed repository (307 on the hub without etags): followed, pulled under the name asked",
          got == default_selection(EN_MODEL) and "models--old-org--c-side" in out, (rc, out, err))


def test_faults():
    cache = os.path.join(TMP, "c5")
    sha256 = REPOS["test-org/en-mean-norm"]["commits"][REPOS["test-org/en-mean-norm"]["refs"]["main"]][
        "model.safetensors"].sha256
    reset(api_500=2, resolve_500=1, cdn_500=2, cdn_429=1)
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm")
    got = snapshot_files(out.strip()) if rc == 0 else {}
    check("500s (API, resolve, CDN) and a 429 retried with backoff: pulled, identical",
          rc == 0 and got == default_selection({**EN, **EXTRA}) and err.count("retrying") == 6 and
          "HTTP 429, retrying in 80 ms" in err and "HTTP 500, retrying in 40 ms" in err, (rc, err))

    reset(api_500=100)
    rc, out, err = sembed(os.path.join(TMP, "c5b"), "pull", "test-org/en-mean-norm")
    check("500 forever: an error after the retries", rc == 1 and "HTTP 500" in err and "after 5 retries" in err,
          err[-300:])

    # a connection cut mid-file: resumed with Range within the same run
    cache = os.path.join(TMP, "c6")
    reset(cut_once=1_000_000)
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm")
    cdn = [r for r in log() if r["server"] == "cdn"]
    got = snapshot_files(out.strip()) if rc == 0 else {}
    check("cut connection: resumed with Range from the bytes received, identical",
          rc == 0 and got == default_selection({**EN, **EXTRA}) and len(cdn) == 2 and cdn[0]["range"] is None and
          cdn[1]["range"] == "bytes=1000000-", (rc, cdn, err))

    # corrupt bytes from the CDN once: the sha256 check refuses them, a refetch
    cache = os.path.join(TMP, "c7")
    reset(corrupt_once=1)
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm")
    got = snapshot_files(out.strip()) if rc == 0 else {}
    check("a download not matching its sha256: refetched, identical", rc == 0 and
          got == default_selection({**EN, **EXTRA}) and "does not match its checksum" in err, (rc, err))

    # a corrupt blob in the cache (same size): detected by the next pull, refetched
    blob = os.path.join(repo_dir(cache, "test-org/en-mean-norm"), "blobs", sha256)
    with open(blob, "r+b") as f:
        f.seek(100)
        f.write(b"\0garbage\0")
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm")
    with open(blob, "rb") as f:
        ok = hashlib.sha256(f.read()).hexdigest() == sha256
    check("a corrupt cached blob: detected and refetched", rc == 0 and ok and "corrupt" in err and
          len([r for r in log() if r["server"] == "cdn"]) == 1, (rc, err))
    small = os.path.join(repo_dir(cache, "test-org/en-mean-norm"), "blobs",
                         REPOS["test-org/en-mean-norm"]["commits"][REPOS["test-org/en-mean-norm"]["refs"]["main"]][
                             "modules.json"].oid)
    with open(small, "ab") as f:
        f.write(b" ")
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm", "-q")
    with open(small, "rb") as f:
        ok = f.read() == EN["modules.json"]
    check("a corrupt small (git sha1) blob: refetched", rc == 0 and ok, err)


def test_kill_resume():
    """kill -9 mid-download, then a rerun resumes (Range) and verifies."""
    cache = os.path.join(TMP, "c8")
    reset(throttle=1_500_000)
    rd = repo_dir(cache, "test-org/en-mean-norm")
    p = subprocess.Popen([SEMBED, "pull", "test-org/en-mean-norm"], env=env_for(cache),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part, size = None, 0
    deadline = time.time() + 10
    while time.time() < deadline:
        bd = os.path.join(rd, "blobs")
        parts = [f for f in os.listdir(bd) if f.endswith(".incomplete")] if os.path.isdir(bd) else []
        if parts:
            try:  # a small blob can finish (and be renamed) between listdir and here
                size = os.path.getsize(os.path.join(bd, parts[0]))
            except FileNotFoundError:
                continue
            part = os.path.join(bd, parts[0])
            if size >= 1_000_000:
                break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    sha = REPOS["test-org/en-mean-norm"]["refs"]["main"]
    killed_size = os.path.getsize(part) if part and os.path.exists(part) else 0
    snap_file = os.path.join(rd, "snapshots", sha, "model.safetensors")
    check("kill -9: the partial download stays as blobs/<sha256>.incomplete, not in the snapshot",
          part is not None and 0 < killed_size < len(EN["model.safetensors"]) and not os.path.lexists(snap_file),
          (part, killed_size))
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/en-mean-norm")
    cdn = [r for r in log() if r["server"] == "cdn"]
    got = snapshot_files(out.strip()) if rc == 0 else {}
    check("kill -9 then pull: resumed with Range from the partial size, verified, identical",
          rc == 0 and got == default_selection({**EN, **EXTRA}) and len(cdn) == 1 and
          cdn[0]["range"] == "bytes=%d-" % killed_size and not os.path.exists(part), (rc, cdn, killed_size, err))


def test_models_rm(cache):
    rc, out, err = sembed(cache, "models", "rm", "test-org/en-mean-norm")
    rc2, out2, _ = sembed(cache, "models")
    check("models rm: removed, no longer listed", rc == 0 and out2 == "" and
          not os.path.exists(repo_dir(cache, "test-org/en-mean-norm")), (rc, err, out2))
    rc, out, err = sembed(cache, "models", "rm", "test-org/en-mean-norm")
    check("models rm of an uncached model: not in the cache", rc == 1 and "not in the cache" in err, err)


def test_js_client():
    """@huggingface/hub (npm) against the same fake hub and the same cache."""
    node_mod = os.path.join(HUB_CLIENT, "node_modules", "@huggingface", "hub")
    if not os.path.isdir(node_mod):
        check("@huggingface/hub installed (npm ci in tests/hub-client)", False, node_mod)
        return
    cache = os.path.join(TMP, "c9")
    script = os.path.join(HUB_CLIENT, "cross.mjs")

    def node(*args):
        p = subprocess.run(["node", script, ENDPOINT, cache, *args], capture_output=True, env=env_for(cache),
                           cwd=HUB_CLIENT)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    # JS fills the cache; sembed uses it offline
    reset()
    rc, out, err = node("snapshot", "test-org/js-side")
    sha = REPOS["test-org/js-side"]["refs"]["main"]
    check("@huggingface/hub snapshotDownload into the cache", rc == 0 and out.strip().endswith(sha), (rc, out, err))
    rc1, o1, e1 = encode(cache, "test-org/js-side", HF_HUB_OFFLINE="1")
    rc2, o2, _ = encode(cache, os.path.join(FIX, "en-mean-norm"))
    check("sembed -m on the cache @huggingface/hub filled (offline): the same vectors", rc1 == 0 and o1 == o2, e1)
    reset()
    rc, out, err = sembed(cache, "pull", "test-org/js-side", "-q")
    check("sembed pull over @huggingface/hub's cache: its blobs verify, nothing downloaded again",
          rc == 0 and not [r for r in log() if r["server"] == "cdn" or
                           (r["method"] == "GET" and "/resolve/" in r["path"])], (err, log()))

    # sembed fills the cache; JS finds every file there
    rc, out, err = sembed(cache, "pull", "test-org/c-side", "-q")
    files = sorted(default_selection(EN_MODEL))
    reset()
    rc, out, err = node("files", "test-org/c-side", *files)
    paths = out.split("\n")[:len(files)] if rc == 0 else []
    same = len(paths) == len(files) and all(open(p, "rb").read() == EN_MODEL[f] for p, f in zip(paths, files))
    check("@huggingface/hub downloadFileToCacheDir on sembed's cache: every file found, identical",
          rc == 0 and same and all("/snapshots/%s/" % REPOS["test-org/c-side"]["refs"]["main"] in p for p in paths),
          (rc, out, err))
    check("@huggingface/hub on sembed's cache: no file downloaded again",
          not [r for r in log() if r["server"] == "cdn" or (r["method"] == "GET" and "/resolve/" in r["path"])],
          log())


def bench_memory():
    """A 1.5 GB file (sparse) streams to disk in constant memory: the pull's peak RSS."""
    big = os.path.join(TMP, "big.safetensors")
    with open(big, "wb") as f:
        f.truncate(1_500_000_000)
        f.seek(750_000_000)
        f.write(b"in the middle")
    t = time.time()
    REPOS["test-org/big"] = {"commits": {"b" * 40: {"model.safetensors": Blob(path=big, lfs=True),
                                                    "config.json": Blob(data=b"{}")}},
                             "refs": {"main": "b" * 40}, "gated": False}
    cache = os.path.join(TMP, "c-big")
    reset()
    t = time.time()
    p = subprocess.Popen([SEMBED, "pull", "test-org/big", "-q"], env=env_for(cache), stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    err = p.stderr.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    dt = time.time() - t
    peak = ru.ru_maxrss  # kB, this process alone
    snap = os.path.join(repo_dir(cache, "test-org/big"), "snapshots", "b" * 40, "model.safetensors")
    check("bench: a 1.5 GB file pulled and verified", p.returncode == 0 and os.path.getsize(snap) == 1_500_000_000,
          err)
    check("bench: peak RSS of the pull under 64 MB (constant memory)", peak < 64 * 1024, peak)
    # the same process pulling a 2-file, 1 kB model: the baseline
    small = {"commits": {"c" * 40: {"config.json": Blob(data=b"{}"), "model.safetensors": Blob(data=b"x" * 1000,
                                                                                                lfs=True)}},
             "refs": {"main": "c" * 40}, "gated": False}
    REPOS["test-org/small"] = small
    p = subprocess.Popen([SEMBED, "pull", "test-org/small", "-q"], env=env_for(cache), stdout=subprocess.DEVNULL)
    _, status, ru0 = os.wait4(p.pid, 0)
    print("bench-memory: 1.5 GB pulled in %.1f s, peak RSS of the pull %.1f MB (a 1 kB pull: %.1f MB)" %
          (dt, peak / 1024.0, ru0.ru_maxrss / 1024.0))
    check("bench: the 1.5 GB pull's peak RSS within 8 MB of a 1 kB pull's", peak - ru0.ru_maxrss < 8 * 1024,
          (peak, ru0.ru_maxrss))


def main():
    t0 = time.time()
    try:
        cache = test_pull_files()
        test_include_and_bin()
        test_offline_and_errors()
        test_first_use_downloads()
        test_renamed()
        test_selection()
        test_concurrent()
        test_faults()
        test_kill_resume()
        test_models_rm(cache)
        test_js_client()
        if BENCH:
            bench_memory()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("test_pull: %.1f s" % (time.time() - t0), file=sys.stderr)
    report("test_pull")


main()
