"""Upstream comparisons: a real local HTTP server, real diffoscope, the unit world's builds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from farm.coordinator import reports, service
from farm.coordinator.errors import NotFoundError
from farm.coordinator.staging import Staging
from farm.coordinator.upstream import UpstreamFetchError, fetch_upstream, make_upstream_reports
from farm.recipe import parse_recipe
from tests.unit.farm.conftest import BASE_RECIPE
from tests.unit.farm.coordinator._world import BAD, GOOD, NOW, WHEEL, envelope, sha
from tests.unit.farm.coordinator.test_service import KEYS, enroll, upload

UPSTREAM = b"the wheel upstream published, which is not ours\n"


@contextmanager
def file_server(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``files`` (path → bytes) over HTTP on loopback; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with file_server({"/good.whl": UPSTREAM, "/wrong.whl": BAD}) as url:
        yield url


def _verified_build(session: Session, staging: Staging, url: str, path: str = "/good.whl") -> str:
    data = dict(BASE_RECIPE)
    data["upstream"] = [{"output": WHEEL, "sha256": sha(UPSTREAM), "url": url + path}]
    r = parse_recipe(data)
    for key in KEYS[:3]:
        enroll(session, key)
    service.create_build(session, r, "amd64", [k.keyid for k in KEYS[:3]], "build-up", NOW)
    for key in KEYS[:3]:
        upload(session, staging, key, GOOD)
        service.record_result(
            session, staging, "build-up", key.keyid, envelope(key, r, "build-up"), NOW
        )
    build = service.get_build(session, "build-up")
    assert build.status == "verified" and build.verdict is not None
    assert build.verdict["upstream_matches"] is False
    return "build-up"


def test_fetch_checks_digest_and_size_while_streaming(upstream_url: str, tmp_path: Path) -> None:
    dest = tmp_path / "x.whl"
    fetch_upstream(upstream_url + "/good.whl", sha(UPSTREAM), dest, 1 << 20)
    assert dest.read_bytes() == UPSTREAM
    with pytest.raises(UpstreamFetchError, match=f"has sha256 {sha(BAD)}, not the recipe"):
        fetch_upstream(upstream_url + "/wrong.whl", sha(UPSTREAM), tmp_path / "w", 1 << 20)
    assert not (tmp_path / "w").exists()
    with pytest.raises(UpstreamFetchError, match="larger than the recipe's output limit"):
        fetch_upstream(upstream_url + "/good.whl", sha(UPSTREAM), tmp_path / "s", 10)
    with pytest.raises(UpstreamFetchError, match="HTTP 404"):
        fetch_upstream(upstream_url + "/nope", sha(UPSTREAM), tmp_path / "n", 1 << 20)
    with pytest.raises(UpstreamFetchError, match="is not http"):
        fetch_upstream("file:///etc/passwd", sha(UPSTREAM), tmp_path / "f", 1 << 20)
    with pytest.raises(UpstreamFetchError, match="ConnectError"):
        fetch_upstream("http://127.0.0.1:1/x", sha(UPSTREAM), tmp_path / "c", 1 << 20)


def test_a_rebuild_that_differs_from_upstream_gets_a_report_in_its_verdict(
    session: Session, tmp_path: Path, upstream_url: str
) -> None:
    staging = Staging(tmp_path / "staging")
    build_id = _verified_build(session, staging, upstream_url)
    rows = reports.make_reports(session, staging, build_id, tmp_path / "reports")
    (row,) = rows
    assert row.against == "upstream" and row.status == "done", row.error
    assert (row.sha256_a, row.sha256_b) == (sha(UPSTREAM), sha(GOOD))
    assert row.id is not None
    assert reports.report_file(session, row.id, "html").is_file()
    report = json.loads(reports.report_file(session, row.id, "json").read_text())
    assert report["source1"].endswith(f"upstream/{WHEEL}")
    assert report["source2"].endswith(f"rebuilt/{WHEEL}")
    assert "-the wheel upstream published" in report["unified_diff"]
    assert "+the reproducible wheel bytes" in report["unified_diff"]
    verdict = service.get_build(session, build_id).verdict
    assert verdict is not None and verdict["status"] == "verified"
    assert verdict["upstream_reports"] == [
        {"output": WHEEL, "report_id": row.id, "status": "done", "error": None}
    ]
    # Made once.
    assert make_upstream_reports(session, staging, build_id, tmp_path / "r2") == [row]


def test_an_upstream_url_serving_other_bytes_is_a_recorded_error(
    session: Session, tmp_path: Path, upstream_url: str
) -> None:
    staging = Staging(tmp_path / "staging")
    build_id = _verified_build(session, staging, upstream_url, "/wrong.whl")
    (row,) = make_upstream_reports(session, staging, build_id, tmp_path / "reports")
    assert row.status == "error" and row.error is not None
    assert "not the recipe's reference" in row.error
    assert row.id is not None
    with pytest.raises(NotFoundError):
        reports.report_file(session, row.id, "html")
    verdict = service.get_build(session, build_id).verdict
    assert verdict is not None and verdict["upstream_reports"][0]["status"] == "error"


def test_matching_or_unreferenced_outputs_are_not_fetched(session: Session, tmp_path: Path) -> None:
    staging = Staging(tmp_path / "staging")
    data = dict(BASE_RECIPE)
    # Matches upstream: nothing to explain, and the (dead) URL is never asked.
    data["upstream"] = [{"output": WHEEL, "sha256": sha(GOOD), "url": "http://127.0.0.1:1/x"}]
    r = parse_recipe(data)
    for key in KEYS[:3]:
        enroll(session, key)
    service.create_build(session, r, "amd64", [k.keyid for k in KEYS[:3]], "b", NOW)
    for key in KEYS[:3]:
        upload(session, staging, key, GOOD)
        service.record_result(session, staging, "b", key.keyid, envelope(key, r, "b"), NOW)
    assert make_upstream_reports(session, staging, "b", tmp_path / "reports") == []
    verdict = service.get_build(session, "b").verdict
    assert verdict is not None and "upstream_reports" not in verdict
