"""builders.fetch against real git repositories, a real git daemon and real HTTP servers.

Local servers only, except one small test against the real PyPI at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from builders.errors import FetchError
from builders.fetch import Fetcher, FetchLimits, git_tree_id
from farm.recipe import ArchiveSource, GitSource, PypiDependency, PypiSource
from tests.support.git import git_daemon as serve_git

COMMIT_TIME = 1_700_000_000

# --- git fixtures -------------------------------------------------------------------


def git(repo: Path, *args: str, when: int = COMMIT_TIME) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_AUTHOR_DATE": f"{when} +0000",
        "GIT_COMMITTER_DATE": f"{when} +0000",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo.parent),
    }
    out = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@dataclass
class Upstream:
    path: Path
    first: str  # commit with the full tree
    second: str  # a later commit


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("hello\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "run.sh").chmod(0o775)
    (repo / "pkg" / "deep").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    (repo / "pkg" / "deep" / "data.txt").write_text("line one\nline two\n")
    (repo / "link").symlink_to("pkg/mod.py")
    # attributes that would make a naive `git archive` differ from the commit's tree
    (repo / ".gitattributes").write_text(
        "ignored.txt export-ignore\nversion.txt export-subst\n*.txt text eol=crlf\n"
    )
    (repo / "ignored.txt").write_text("still here\n")
    (repo / "version.txt").write_text("$Format:%H$\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "v1", "-m", "v1")
    (repo / "later").write_text("later\n")
    git(repo, "add", "later")
    git(repo, "commit", "-qm", "second", when=COMMIT_TIME + 100)
    second = git(repo, "rev-parse", "HEAD")
    return Upstream(repo, first, second)


def src(url: str, commit: str, subdir: str | None = None) -> GitSource:
    return GitSource(type="git", url=url, commit=commit, subdir=subdir)


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture
def fetcher(tmp_path: Path, messages: list[str]) -> Iterator[Fetcher]:
    with Fetcher(tmp_path / "cache", progress=messages.append) as f:
        yield f


def tree_listing(root: Path) -> list[tuple[str, int, float]]:
    return sorted(
        (str(p.relative_to(root)), stat.S_IMODE(p.lstat().st_mode), p.lstat().st_mtime)
        for p in [root, *root.rglob("*")]
    )


# --- git ----------------------------------------------------------------------------


def test_git_export_is_exactly_the_commit(
    upstream: Upstream, fetcher: Fetcher, tmp_path: Path
) -> None:
    out = fetcher.source(src(str(upstream.path), upstream.first), tmp_path / "b1")
    assert out == tmp_path / "b1" / "src"
    assert not (out / ".git").exists()
    assert not (out / "later").exists()  # the tree of the pinned commit, not of HEAD
    assert git_tree_id(out) == git(upstream.path, "rev-parse", f"{upstream.first}^{{tree}}")
    # attributes did not change a byte: no export-ignore, no export-subst, no CRLF
    assert (out / "ignored.txt").read_text() == "still here\n"
    assert (out / "version.txt").read_text() == "$Format:%H$\n"
    assert (out / "pkg" / "deep" / "data.txt").read_bytes() == b"line one\nline two\n"
    assert (out / "link").readlink() == Path("pkg/mod.py")
    listing = tree_listing(out)
    assert {mtime for _, _, mtime in listing} == {COMMIT_TIME}
    modes = {name: mode for name, mode, _ in listing}
    assert modes["run.sh"] == 0o755
    assert modes["README"] == 0o644
    assert modes["pkg"] == 0o755


def test_git_file_url_subdir_and_cache(
    upstream: Upstream, fetcher: Fetcher, tmp_path: Path, messages: list[str]
) -> None:
    url = upstream.path.as_uri()
    out = fetcher.source(src(url, upstream.first, "pkg"), tmp_path / "b1")
    assert sorted(p.name for p in out.iterdir()) == ["deep", "mod.py"]
    assert any(m.startswith("fetching") for m in messages)
    # the mirror answers from now on, with the upstream gone
    shutil.rmtree(upstream.path)
    messages.clear()
    again = fetcher.source(src(url, upstream.first), tmp_path / "b2")
    assert (again / "README").is_file()
    assert not any(m.startswith("fetching") for m in messages)
    assert any("cached" in m for m in messages)


def test_git_mirror_fetches_new_commits(
    upstream: Upstream, fetcher: Fetcher, tmp_path: Path
) -> None:
    fetcher.source(src(str(upstream.path), upstream.first), tmp_path / "b1")
    (upstream.path / "third").write_text("3\n")
    git(upstream.path, "add", "third")
    git(upstream.path, "commit", "-qm", "third", when=COMMIT_TIME + 200)
    third = git(upstream.path, "rev-parse", "HEAD")
    out = fetcher.source(src(str(upstream.path), third), tmp_path / "b2")
    assert (out / "third").read_text() == "3\n"
    assert out.stat().st_mtime == COMMIT_TIME + 200


@pytest.fixture
def git_daemon(upstream: Upstream) -> Iterator[str]:
    with serve_git(upstream.path.parent) as port:
        yield f"git://127.0.0.1:{port}/{upstream.path.name}"


def test_git_daemon(upstream: Upstream, git_daemon: str, fetcher: Fetcher, tmp_path: Path) -> None:
    out = fetcher.source(src(git_daemon, upstream.second), tmp_path / "b")
    assert (out / "later").read_text() == "later\n"
    assert git_tree_id(out) == git(upstream.path, "rev-parse", f"{upstream.second}^{{tree}}")


def test_unknown_commit(upstream: Upstream, fetcher: Fetcher, tmp_path: Path) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(FetchError) as err:
        fetcher.source(src(str(upstream.path), missing), tmp_path / "b")
    assert str(upstream.path) in str(err.value) and missing in str(err.value)
    assert not (tmp_path / "b" / "src").exists()
    assert list((tmp_path / "b").iterdir()) == []


def test_unreachable_url(fetcher: Fetcher, tmp_path: Path) -> None:
    url = "git://127.0.0.1:9/nothing"
    with pytest.raises(FetchError, match=f"{url}: cannot fetch commit {'1' * 40}"):
        fetcher.source(src(url, "1" * 40), tmp_path / "b")


def test_dangerous_git_transports_are_refused(fetcher: Fetcher, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    url = f"ext::sh -c touch% {marker}"
    with pytest.raises(FetchError, match="cannot fetch commit"):
        fetcher.source(src(url, "1" * 40), tmp_path / "b")
    assert not marker.exists()


@pytest.mark.parametrize("ref", ["main", "v1", "HEAD", "refs/heads/main", "abc123"])
def test_ref_names_are_refused(
    upstream: Upstream, fetcher: Fetcher, tmp_path: Path, ref: str
) -> None:
    with pytest.raises(ValidationError, match="commit"):
        src(str(upstream.path), ref)
    # and the fetcher does not trust a model built without validation
    forged = GitSource.model_construct(type="git", url=str(upstream.path), commit=ref)
    with pytest.raises(FetchError, match="not a full 40-hex commit; refs are refused"):
        fetcher.source(forged, tmp_path / "b")


@pytest.mark.parametrize("kind", ["tree", "tag"])
def test_non_commit_objects_are_refused(
    upstream: Upstream, fetcher: Fetcher, tmp_path: Path, kind: str
) -> None:
    fetcher.source(src(str(upstream.path), upstream.first), tmp_path / "warm")  # fill the mirror
    obj = git(upstream.path, "rev-parse", f"{upstream.first}^{{tree}}" if kind == "tree" else "v1")
    mirror = next((tmp_path / "cache" / "git").glob("*.git"))
    # put the object into the mirror too, so only the type check can refuse it
    subprocess.run(["git", "-C", str(mirror), "fetch", "-q", str(upstream.path), "v1"], check=True)
    with pytest.raises(FetchError, match="not a commit; refused"):
        fetcher.source(src(str(upstream.path), obj), tmp_path / "b")


def test_symlink_escaping_the_repository_is_refused(
    upstream: Upstream, fetcher: Fetcher, tmp_path: Path
) -> None:
    (upstream.path / "escape").symlink_to("../../etc/passwd")
    git(upstream.path, "add", "escape")
    git(upstream.path, "commit", "-qm", "evil")
    evil = git(upstream.path, "rev-parse", "HEAD")
    with pytest.raises(FetchError, match=r"'escape': symlink.*outside the tree"):
        fetcher.source(src(str(upstream.path), evil), tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []


def test_concurrent_fetchers_share_one_cache(upstream: Upstream, tmp_path: Path) -> None:
    results: list[Path | BaseException] = []

    def run(i: int) -> None:
        try:
            with Fetcher(tmp_path / "cache") as f:
                results.append(f.source(src(str(upstream.path), upstream.first), tmp_path / f"{i}"))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, Path) for r in results), results
    trees = {git_tree_id(r) for r in results if isinstance(r, Path)}
    assert len(trees) == 1


# --- a local HTTP server with a small PyPI-like JSON API ----------------------------


@dataclass
class Server:
    base: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def add(self, path: str, body: bytes, status: int = 200, **headers: str) -> str:
        self.routes[path] = (status, headers, body)
        return self.base + path

    def release(
        self, name: str, version: str, files: dict[str, bytes], *, lie: bool = False
    ) -> None:
        """Serve ``files`` and list them at /pypi/NAME/VERSION/json (``lie``: wrong digests)."""
        urls = []
        for filename, data in files.items():
            digest = hashlib.sha256(data + (b"x" if lie else b"")).hexdigest()
            urls.append(
                {
                    "filename": filename,
                    "url": self.add(f"/files/{filename}", data),
                    "digests": {"sha256": digest, "md5": "unused"},
                    "size": len(data),
                    "packagetype": "sdist"
                    if filename.endswith((".tar.gz", ".zip"))
                    else "bdist_wheel",
                }
            )
        doc = {"info": {"name": name, "version": version}, "urls": urls}
        self.add(f"/pypi/{name}/{version}/json", json.dumps(doc).encode())


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            status, headers, body = state.routes.get(self.path, (404, {}, b"not found"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def http_fetcher(
    tmp_path: Path, server: Server, messages: list[str]
) -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(**kwargs: object) -> Fetcher:
        f = Fetcher(
            tmp_path / "cache",
            pypi_url=server.base + "/",
            progress=messages.append,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def sdist(top: str, files: dict[str, tuple[bytes, int, int]]) -> bytes:
    """A tar.gz with a top directory; files map name -> (data, mode, mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(top)
        info.type = tarfile.DIRTYPE
        info.mtime = 1_600_000_000
        info.mode = 0o755
        tf.addfile(info)
        for name, (data, mode, mtime) in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PKG = sdist(
    "demo-1.0",
    {
        "setup.py": (b"from setuptools import setup\n", 0o664, 1_600_000_001),
        "demo/__init__.py": (b"", 0o600, 1_600_000_002),
        "bin/demo": (b"#!/bin/sh\n", 0o775, 1_600_000_003),
    },
)


def test_archive_fetch_strip_mtimes_and_cache(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path, messages: list[str]
) -> None:
    url = server.add("/dl/demo-1.0.tar.gz", PKG)
    source = ArchiveSource(type="archive", url=url, sha256=sha(PKG), strip_components=1)
    out = http_fetcher().source(source, tmp_path / "b1")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "bin", "bin/demo", "demo", "demo/__init__.py", "setup.py",
    ]  # fmt: skip
    assert (out / "setup.py").stat().st_mtime == 1_600_000_001
    assert (out / "demo" / "__init__.py").stat().st_mtime == 1_600_000_002
    assert stat.S_IMODE((out / "setup.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "demo" / "__init__.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "bin" / "demo").stat().st_mode) == 0o755
    assert out.stat().st_mtime == 1_600_000_000
    assert f"verified sha256:{sha(PKG)}" in " ".join(messages)
    assert server.requests == ["/dl/demo-1.0.tar.gz"]
    # a new fetcher on the same cache does not touch the network
    out2 = http_fetcher().source(source, tmp_path / "b2")
    assert server.requests == ["/dl/demo-1.0.tar.gz"]
    assert tree_listing(out2) == tree_listing(out)


def test_damaged_cache_entry_is_fetched_again(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    url = server.add("/dl/demo-1.0.tar.gz", PKG)
    source = ArchiveSource(type="archive", url=url, sha256=sha(PKG))
    http_fetcher().source(source, tmp_path / "b1")
    blob = tmp_path / "cache" / "blobs" / "sha256" / sha(PKG)
    blob.chmod(0o644)
    blob.write_bytes(b"damaged")
    out = http_fetcher().source(source, tmp_path / "b2")
    assert (out / "setup.py").is_file()
    assert len(server.requests) == 2
    assert blob.read_bytes() == PKG


def test_zip_archive(server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("demo-1.0/a.txt", (2020, 5, 6, 7, 8, 10)), b"a")
    data = buf.getvalue()
    url = server.add("/dl/demo.zip", data)
    out = http_fetcher().source(
        ArchiveSource(type="archive", url=url, sha256=sha(data)), tmp_path / "b"
    )
    assert (out / "a.txt").read_bytes() == b"a"
    assert (out / "a.txt").stat().st_mtime == 1588748890


def test_sha256_mismatch_keeps_nothing(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    url = server.add("/dl/demo-1.0.tar.gz", PKG)
    pinned = "0" * 64
    with pytest.raises(FetchError) as err:
        http_fetcher().source(ArchiveSource(type="archive", url=url, sha256=pinned), tmp_path / "b")
    assert f"expected {pinned}, got {sha(PKG)}" in str(err.value)
    cache = tmp_path / "cache"
    assert list((cache / "blobs" / "sha256").iterdir()) == []
    assert list((cache / "tmp").iterdir()) == []
    assert list((tmp_path / "b").iterdir()) == []


def test_malicious_archive_over_http_is_refused(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("demo-1.0/../../../escaped")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    data = buf.getvalue()
    url = server.add("/dl/evil.tar.gz", data)
    with pytest.raises(FetchError, match=r"'demo-1.0/../../../escaped': '..' in path refused"):
        http_fetcher().source(
            ArchiveSource(type="archive", url=url, sha256=sha(data)), tmp_path / "b"
        )
    assert not (tmp_path / "escaped").exists()
    assert list((tmp_path / "b").iterdir()) == []


def test_http_errors_redirects_and_caps(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    fetcher = http_fetcher(limits=FetchLimits(max_download=1000))
    small = b"x" * 10
    server.add("/real/small", small)
    hop = server.add("/hop", b"", 302, Location="/real/small")
    # redirects under the configured base are followed
    blob = fetcher._blob(hop, sha(small), "small", None)
    assert blob.read_bytes() == small
    away = server.add("/away", b"", 302, Location="http://localhost:9/x")
    with pytest.raises(FetchError, match="redirect to http://localhost:9/x refused"):
        fetcher._blob(away, "1" * 64, "away", None)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher._blob(server.base + "/missing", "2" * 64, "missing", None)
    big = server.add("/big", b"y" * 5000)
    with pytest.raises(FetchError, match="more than the cap of 1000"):
        fetcher._blob(big, "3" * 64, "big", None)
    with pytest.raises(FetchError, match="only http and https"):
        fetcher._blob("file:///etc/passwd", "4" * 64, "file", None)
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_pypi_sdist(server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path) -> None:
    wheel = b"PK\x05\x06" + bytes(18)
    server.release("demo", "1.0", {"demo-1.0.tar.gz": PKG, "demo-1.0-py3-none-any.whl": wheel})
    pin = PypiSource(type="pypi", name="demo", version="1.0", sha256=sha(PKG))
    out = http_fetcher().source(pin, tmp_path / "b1")
    assert (out / "setup.py").stat().st_mtime == 1_600_000_001
    assert server.requests == ["/pypi/demo/1.0/json", "/files/demo-1.0.tar.gz"]
    http_fetcher().source(pin, tmp_path / "b2")  # cache: no request at all
    assert len(server.requests) == 2
    # a wheel pinned as the source is not an sdist
    as_wheel = PypiSource(type="pypi", name="demo", version="1.0", sha256=sha(wheel))
    with pytest.raises(FetchError, match=r"demo==1.0: .* is a bdist_wheel, not an sdist"):
        http_fetcher().source(as_wheel, tmp_path / "b3")
    wrong_name = pin.model_copy(update={"filename": "demo-1.0.zip"})
    with pytest.raises(FetchError, match=r"is demo-1.0.tar.gz, not demo-1.0.zip"):
        http_fetcher().source(wrong_name, tmp_path / "b4")


def test_pypi_index_lies_about_the_digest(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    # the index claims the pinned digest, the file has another one
    server.add("/files/demo-1.0.tar.gz", PKG)
    doc = {"urls": [{
        "filename": "demo-1.0.tar.gz", "url": server.base + "/files/demo-1.0.tar.gz",
        "digests": {"sha256": "9" * 64}, "packagetype": "sdist", "size": len(PKG),
    }]}  # fmt: skip
    server.add("/pypi/demo/1.0/json", json.dumps(doc).encode())
    pin = PypiSource(type="pypi", name="demo", version="1.0", sha256="9" * 64)
    with pytest.raises(FetchError, match=f"expected {'9' * 64}, got {sha(PKG)}"):
        http_fetcher().source(pin, tmp_path / "b")
    assert list((tmp_path / "cache" / "blobs" / "sha256").iterdir()) == []


def test_pypi_project_document_fallback_and_not_found(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    # a mirror without the per-release endpoint, with a relative file URL
    server.add("/packages/demo-1.0.tar.gz", PKG)
    doc = {"releases": {"1.0": [{
        "filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
        "digests": {"sha256": sha(PKG)}, "packagetype": "sdist", "size": len(PKG),
    }]}}  # fmt: skip
    server.add("/pypi/demo/json", json.dumps(doc).encode())
    pin = PypiSource(type="pypi", name="demo", version="1.0", sha256=sha(PKG))
    out = http_fetcher().source(pin, tmp_path / "b")
    assert (out / "setup.py").is_file()
    with pytest.raises(FetchError, match=r"demo==2.0: no such release"):
        http_fetcher().source(pin.model_copy(update={"version": "2.0"}), tmp_path / "c")
    with pytest.raises(FetchError, match=r"nothing==1.0: not found"):
        http_fetcher().source(pin.model_copy(update={"name": "nothing"}), tmp_path / "d")


def test_dependencies(server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path) -> None:
    wheel_a, wheel_b = b"wheel a", b"wheel b"
    server.release("a", "1", {"a-1-py3-none-any.whl": wheel_a})
    server.release("b", "2", {"b-2-py3-none-any.whl": wheel_b, "b-2.tar.gz": b"sdist b"})
    deps = [
        PypiDependency(name="a", version="1", sha256=sha(wheel_a)),
        PypiDependency(name="b", version="2", sha256=sha(wheel_b), filename="b-2-py3-none-any.whl"),
    ]
    out = http_fetcher().dependencies(deps, tmp_path / "b1")
    assert out == tmp_path / "b1" / "deps"
    assert sorted(p.name for p in out.iterdir()) == ["a-1-py3-none-any.whl", "b-2-py3-none-any.whl"]
    assert (out / "b-2-py3-none-any.whl").read_bytes() == wheel_b
    assert (out / "a-1-py3-none-any.whl").stat().st_mtime == 315532800
    n = len(server.requests)
    http_fetcher().dependencies(deps, tmp_path / "b2")
    assert len(server.requests) == n  # all from the cache
    missing = [*deps, PypiDependency(name="c", version="3", sha256="7" * 64)]
    with pytest.raises(FetchError, match=r"^c==3: not found"):
        http_fetcher().dependencies(missing, tmp_path / "b3")
    assert list((tmp_path / "b3").iterdir()) == []
    server.release("d", "4", {"d-4-py3-none-any.whl": b"d"}, lie=True)
    lying = [PypiDependency(name="d", version="4", sha256=sha(b"dx"))]
    with pytest.raises(FetchError, match=r"d-4-py3-none-any.whl: sha256 mismatch"):
        http_fetcher().dependencies(lying, tmp_path / "b4")
    wrong = [PypiDependency(name="a", version="1", sha256="5" * 64)]
    with pytest.raises(FetchError, match=r"^a==1: no file has sha256 5{64}"):
        http_fetcher().dependencies(wrong, tmp_path / "b5")


def test_refuses_to_overwrite(
    server: Server, http_fetcher: Callable[..., Fetcher], tmp_path: Path
) -> None:
    (tmp_path / "b" / "deps").mkdir(parents=True)
    with pytest.raises(FetchError, match="already exists"):
        http_fetcher().dependencies([], tmp_path / "b")


# --- the real PyPI ------------------------------------------------------------------

INICONFIG_SDIST_SHA256 = "3abbd2e30b36733fee78f9c7f7308f2d0050e88f0087fd25c2645f63c773e1c7"


def test_real_pypi_sdist(tmp_path: Path) -> None:
    """iniconfig 2.1.0's sdist (4.8 kB) from pypi.org, pinned by its published sha256."""
    pin = PypiSource(
        type="pypi",
        name="iniconfig",
        version="2.1.0",
        sha256=INICONFIG_SDIST_SHA256,
        filename="iniconfig-2.1.0.tar.gz",
    )
    with Fetcher(tmp_path / "cache") as fetcher:
        out = fetcher.source(pin, tmp_path / "b")
    assert (out / "PKG-INFO").read_text().splitlines()[2] == "Version: 2.1.0"
    assert (out / "src" / "iniconfig" / "__init__.py").is_file()
    assert isinstance(httpx.__version__, str)
