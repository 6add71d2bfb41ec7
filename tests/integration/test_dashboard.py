"""The operator dashboard in a real headless Chromium (Debian's ``chromium`` package).

A real ``farm serve --ledger`` on four real ``farm ledger run`` validators; three
builders enroll, are approved (so enrolled on the ledger) and send real signed results
over HTTP for a build that ends verified (and is attested on the ledger), one that ends
disputed (with a real diffoscope report) and one still pending with a refused result.
A fourth builder, never approved, has a hostname full of HTML. Chromium loads the pages
and the tests assert on the rendered DOM; the last test stops the ledger and checks the
dashboard says so instead of failing.
"""

from __future__ import annotations

import io
import os
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from farm.cluster import free_port
from farm.coordinator import service
from farm.coordinator.client import CoordinatorClient
from farm.coordinator.db import create_tables, make_engine, session_scope
from farm.coordinator.errors import ResultRefusedError
from farm.coordinator.models import utcnow
from farm.keys import KeyPair, generate_key, load_key
from farm.operator import Operator
from tests.support.ledger_testnet import LedgerTestnet
from tests.support.operator import approve
from tests.support.served import Serve, wait_for
from tests.unit.farm.coordinator._world import GOOD, envelope, recipe, sha

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EVIL_HOST = '<img src=x onerror="alert(1)"><b id="injected">evil</b>'
LOG_TEXT = "step 1: compiling\n<script>alert('log')</script>\nstep 2: wheel written\n"


def wheel(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("demo/__init__.py", f"BUILT = {text!r}\n")
    return buf.getvalue()


SAME, ODD = wheel("the same bytes"), wheel("host three stamped the time")


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """Headless Chromium through the system chromedriver (selenium-manager not used)."""
    assert CHROMIUM.is_file(), "chromium is not installed (apt-get install chromium)"
    assert CHROMEDRIVER.is_file(), "chromedriver is missing (apt-get install chromium-driver)"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1800",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Dash:
    """A farm with data in it, on a ledger, and a browser."""

    url: str
    http: httpx.Client
    net: LedgerTestnet
    browser: WebDriver
    keys: list[KeyPair]
    pending_key: KeyPair
    shots: Path

    def open(self, path: str) -> None:
        self.browser.get(self.url + path)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        assert self.browser.save_screenshot(str(path)), path
        assert path.stat().st_size > 10_000, "the screenshot is (nearly) empty"
        return path


def _serve(root: Path, db: str, *extra: str) -> tuple[Serve, httpx.Client]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FARM_")},
        "FARM_COORDINATOR_REPORTS_DIR": str(root / "reports"),
        "FARM_COORDINATOR_LEDGER_INTERVAL": "0.3",
    }
    argv = [
        sys.executable, "-m", "farm.cli", "serve", "--db", db, "--port", str(port),
        "--staging", str(root / "staging"), "--log-level", "warning", *extra,
    ]  # fmt: skip
    serve = Serve(argv, env, root / "serve.log", url)
    http = httpx.Client(base_url=url, timeout=30)
    serve.start(http)
    return serve, http


def _populate(
    url: str, http: httpx.Client, db: str, token: str, signer: Operator | None = None
) -> tuple[list[KeyPair], KeyPair]:
    """Three approved builders with results for three builds, and one pending builder."""
    operator = CoordinatorClient(http, operator_token=token)
    keys = [generate_key() for _ in range(3)]
    clients = []
    for i, key in enumerate(keys):
        client = CoordinatorClient(http, key=key)
        client.enroll(operator.new_enrollment_token()["token"], f"rack{i + 1}.farm.test", ["amd64"])
        approve(operator, key.keyid, f"site-{i + 1}", signer)
        client.heartbeat()
        clients.append(client)
    pending = generate_key()
    CoordinatorClient(http, key=pending).enroll(
        operator.new_enrollment_token()["token"], EVIL_HOST, ["amd64", "arm64"]
    )
    engine = make_engine(db)
    with session_scope(engine) as session:
        for build_id in ("dash-verified", "dash-disputed", "dash-pending"):
            ids = [k.keyid for k in keys]
            service.create_build(session, recipe(), "amd64", ids, build_id, utcnow())
    engine.dispose()
    log_sha = clients[0].upload(LOG_TEXT.encode())
    for key, client in zip(keys, clients, strict=True):
        client.upload(GOOD)
        client.post_result("dash-verified", envelope(key, recipe(), "dash-verified"))
    for key, client, data in zip(keys, clients, (SAME, SAME, ODD), strict=True):
        client.upload(data)
        env = envelope(key, recipe(), "dash-disputed", data, log_sha256=log_sha)
        client.post_result("dash-disputed", env)
    # A result whose output was never uploaded: refused, with the reason recorded.
    forged = envelope(keys[0], recipe(), "dash-pending", b"never uploaded")
    with pytest.raises(ResultRefusedError):
        clients[0].post_result("dash-pending", forged)
    return keys, pending


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    root = tmp_path_factory.mktemp("dashboard")
    net = LedgerTestnet(root / "ledger", 4)
    db = f"sqlite:///{root / 'coordinator.db'}"
    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        token = service.create_operator_token(session, utcnow(), "dashboard test")
    engine.dispose()
    try:
        net.start_all()
        ledger = ",".join(net.url(i) for i in range(net.n))
        serve, http = _serve(
            root, db, "--ledger", ledger,
            "--coordinator-key", str(net.root / "coordinator.key"),
            "--ledger-chain", net.chain_id, "--genesis", str(net.genesis),
        )  # fmt: skip
        try:
            signer = Operator(load_key(net.root / "operator.key"), net.chain_id)
            keys, pending = _populate(serve.url, http, db, token, signer)

            def attested() -> bool | None:
                page = http.get("/v1/attestations").json()
                return page["total"] == 1 or None

            wait_for("the verified build's attestation on the ledger", attested, 60, 0.2)

            def compared() -> list[Any] | None:
                diffs: list[Any] = http.get("/v1/builds/dash-disputed/diffs").json()
                return diffs or None

            (report,) = wait_for("the diffoscope report", compared, 120, 0.3)
            assert report["status"] == "done", report
            with chromium() as browser:
                shots = root / "screenshots"
                shots.mkdir()
                yield Dash(serve.url, http, net, browser, keys, pending, shots)
        finally:
            http.close()
            serve.stop()
    finally:
        net.close()


def _rows(browser: WebDriver, table: str, key: str) -> dict[str, WebElement]:
    rows = browser.find_elements(By.CSS_SELECTOR, f"table#{table} tbody tr")
    return {str(r.get_attribute(key)): r for r in rows}


def test_overview_lists_builds_with_their_verdicts(dash: Dash) -> None:
    dash.open("/")
    assert dash.browser.title == "overview · farm coordinator"
    rows = _rows(dash.browser, "builds", "data-build-id")
    assert set(rows) == {"dash-verified", "dash-disputed", "dash-pending"}
    verdicts = {b: r.find_element(By.CSS_SELECTOR, ".verdict").text for b, r in rows.items()}
    assert verdicts == {
        "dash-verified": "verified",
        "dash-disputed": "disputed",
        "dash-pending": "pending",
    }
    assert "3/3 builders agree" in rows["dash-verified"].text
    assert "demo 1.0.0" in rows["dash-disputed"].text
    # Verdict colours come from the stylesheet (green for verified, red for disputed).
    ok = rows["dash-verified"].find_element(By.CSS_SELECTOR, ".verdict")
    bad = rows["dash-disputed"].find_element(By.CSS_SELECTOR, ".verdict")
    assert ok.value_of_css_property("color") == "rgba(26, 127, 55, 1)"
    assert bad.value_of_css_property("color") == "rgba(180, 35, 24, 1)"
    shot = dash.shot("overview")
    print(f"screenshot: {shot}")
    assert dash.browser.find_elements(By.ID, "older") == []  # one page holds them all
    # Paging back: the oldest build alone, and a way to the newer ones.
    dash.open("/?offset=2")
    assert set(_rows(dash.browser, "builds", "data-build-id")) == {"dash-verified"}
    assert "(3–3 of 3)" in dash.browser.find_element(By.CSS_SELECTOR, "#recent h2").text
    dash.browser.find_element(By.ID, "newer").click()
    wait_for(
        "the newest page",
        lambda: len(_rows(dash.browser, "builds", "data-build-id")) == 3 or None,
        10,
    )
    assert dash.browser.current_url == f"{dash.url}/?offset=0"


def test_overview_lists_builders_with_health_and_agreement(dash: Dash) -> None:
    for key in dash.keys:  # builders beat every few seconds; these have been quiet a while
        CoordinatorClient(dash.http, key=key).heartbeat()
    dash.open("/")
    rows = _rows(dash.browser, "builders", "data-builder-id")
    assert set(rows) == {k.keyid for k in dash.keys} | {dash.pending_key.keyid}
    for i, key in enumerate(dash.keys):
        row = rows[key.keyid]
        assert row.find_element(By.CSS_SELECTOR, ".hostname").text == f"rack{i + 1}.farm.test"
        assert row.find_element(By.CSS_SELECTOR, ".health").text == "healthy"
        # Two builds each; only the verified one counts as an agreement.
        assert row.find_element(By.CSS_SELECTOR, ".builds-done").text == "2"
        assert row.find_element(By.CSS_SELECTOR, ".agreement").text == "50%"
        assert "enrolled at" in row.text  # its enroll transaction is on the ledger
    stranger = rows[dash.pending_key.keyid]
    assert stranger.find_element(By.CSS_SELECTOR, ".health").text == "not healthy"
    assert "waiting for approval" in stranger.text
    assert "amd64, arm64" in stranger.text
    # The hostname is shown as text: no element was injected, no image loaded.
    assert stranger.find_element(By.CSS_SELECTOR, ".hostname").text == EVIL_HOST
    assert dash.browser.find_elements(By.ID, "injected") == []
    assert dash.browser.find_elements(By.CSS_SELECTOR, "#builders img") == []


def test_overview_shows_ledger_height_and_checkpoint(dash: Dash) -> None:
    dash.open("/")
    status = dash.net.status(0)
    assert status is not None
    height = int(dash.browser.find_element(By.ID, "ledger-height").text)
    size = int(dash.browser.find_element(By.ID, "ledger-size").text)
    # Three enrolls and one attestation are committed; the ledger may have moved on since.
    assert 1 <= height <= status["height"]
    assert 4 <= size <= status["size"]
    note = dash.browser.find_element(By.ID, "ledger-checkpoint").text
    assert note.splitlines()[1].isdigit(), note  # C2SP note: origin, size, root, signatures
    assert "—" in note  # the validators' signature lines
    attestation = dash.http.get("/v1/attestations").json()["items"][0]
    last = dash.browser.find_element(By.ID, "ledger-last-index").text
    assert int(last) == attestation["ledger_index"]


def test_disputed_build_links_to_its_diffoscope_report(dash: Dash) -> None:
    dash.open("/")
    section = dash.browser.find_element(By.ID, "disputed")
    (row,) = section.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert row.get_attribute("data-build-id") == "dash-disputed"
    (link,) = row.find_elements(By.CSS_SELECTOR, "a.diff-link")
    assert link.text == "demo-1.0.0-py3-none-any.whl"
    report = dash.http.get("/v1/builds/dash-disputed/diffs").json()[0]
    assert link.get_attribute("href") == f"{dash.url}/v1/diffs/{report['id']}.html"
    link.click()
    wait_for("the report page", lambda: dash.browser.current_url.endswith(".html") or None, 10)
    body = dash.browser.find_element(By.TAG_NAME, "body").text
    assert "demo/__init__.py" in body  # diffoscope's own HTML, inside the wheel
    assert "host three stamped the time" in body.replace(
        "\u00b7", " "
    )  # diffoscope shows spaces as ·
    dash.shot("diffoscope-report")


def test_build_page_shows_each_builders_result_and_log(dash: Dash) -> None:
    dash.open("/")
    rows = _rows(dash.browser, "builds", "data-build-id")
    rows["dash-disputed"].find_element(By.LINK_TEXT, "dash-disputed").click()
    wait_for(
        "the build page", lambda: "/builds/dash-disputed" in dash.browser.current_url or None, 10
    )
    assert dash.browser.find_element(By.ID, "build-status").text == "disputed"
    assert "2/3 builders agree" in dash.browser.find_element(By.ID, "verdict-reason").text
    results = {
        str(r.get_attribute("data-builder-id")): r
        for r in dash.browser.find_elements(By.CSS_SELECTOR, "#results .result")
    }
    assert set(results) == {k.keyid for k in dash.keys}
    odd = results[dash.keys[2].keyid]
    assert "dissented" in odd.text and sha(ODD) in odd.text
    for key in dash.keys[:2]:
        assert "agreed" in results[key.keyid].text and sha(SAME) in results[key.keyid].text
    for r in results.values():
        assert r.find_element(By.CSS_SELECTOR, ".result-status").text == "accepted"
        log = r.find_element(By.CSS_SELECTOR, "pre.log").text
        assert log == LOG_TEXT.strip()  # the script tag is text, not a script
        href = r.find_element(By.CSS_SELECTOR, "a.log-link").get_attribute("href")
        assert href is not None and dash.http.get(href).text == LOG_TEXT
    (diff,) = dash.browser.find_elements(By.CSS_SELECTOR, "#diffs a.diff-link")
    report = dash.http.get("/v1/builds/dash-disputed/diffs").json()[0]
    assert diff.get_attribute("href") == f"{dash.url}/v1/diffs/{report['id']}.html"
    dash.shot("build-disputed")

    dash.open("/builds/dash-pending")
    (refused,) = dash.browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert refused.find_element(By.CSS_SELECTOR, ".result-status").text == "refused"
    reason = refused.find_element(By.CSS_SELECTOR, ".reason").text
    assert "was not uploaded to staging" in reason

    dash.open("/builds/no-such-build")
    assert (
        "build no-such-build does not exist" in dash.browser.find_element(By.ID, "not-found").text
    )


def test_dashboard_says_when_the_ledger_is_down(dash: Dash) -> None:
    """Runs last: it stops the ledger."""
    for i in range(dash.net.n):
        dash.net.kill(i)
    started = time.monotonic()
    dash.open("/")
    assert time.monotonic() - started < 20
    problem = dash.browser.find_element(By.ID, "ledger-problem").text
    assert problem.startswith("unreachable")
    assert "no ledger validator answered" in problem
    assert dash.browser.find_elements(By.ID, "ledger-height") == []
    # What the coordinator recorded is still shown: the newest attestation's checkpoint.
    attestation = dash.http.get("/v1/attestations").json()["items"][0]
    stored = dash.browser.find_element(By.ID, "ledger-last-checkpoint").text
    assert stored == attestation["checkpoint"].strip()
    # Everything else is still there.
    assert len(_rows(dash.browser, "builds", "data-build-id")) == 3
    dash.shot("ledger-down")


def test_dashboard_without_a_ledger_and_without_data(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    serve, http = _serve(tmp_path, db)
    try:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]
        missing = http.get("/builds/nope")
        assert missing.status_code == 404 and "does not exist" in missing.text
        spec = http.get("/openapi.json").json()
        assert "/" not in spec["paths"] and "/builds/{build_id}" not in spec["paths"]
        with chromium() as browser:
            browser.get(serve.url + "/")
            problem = browser.find_element(By.ID, "ledger-problem").text
            assert problem.startswith("not configured")
            assert "farm serve --ledger" in problem
            empty = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".empty")]
            assert empty == [
                "No builds yet.",
                "No disputed builds.",
                "No builder has enrolled yet.",
            ]
    finally:
        http.close()
        serve.stop()


def test_recent_builds_show_the_upstream_comparison(tmp_path: Path) -> None:
    """A verified build whose agreed wheel is not upstream's says so in the list, not
    only on its own page; one that matches says that; one without a reference, neither."""
    db = f"sqlite:///{tmp_path / 'upstream.db'}"
    engine = make_engine(db)
    create_tables(engine)
    with session_scope(engine) as session:
        token = service.create_operator_token(session, utcnow(), "upstream test")
    serve, http = _serve(tmp_path, db)
    try:
        operator = CoordinatorClient(http, operator_token=token)
        keys = [generate_key() for _ in range(3)]
        clients = []
        for i, key in enumerate(keys):
            client = CoordinatorClient(http, key=key)
            client.enroll(operator.new_enrollment_token()["token"], f"up{i}.farm.test", ["amd64"])
            approve(operator, key.keyid, f"site-{i}")
            client.upload(GOOD)
            clients.append(client)
        recipes = {
            "up-differs": recipe(upstream=ODD),
            "up-matches": recipe(upstream=GOOD),
            "up-unknown": recipe(),
        }
        with session_scope(engine) as session:
            for build_id, r in recipes.items():
                ids = [k.keyid for k in keys]
                service.create_build(session, r, "amd64", ids, build_id, utcnow())
        engine.dispose()
        for build_id, r in recipes.items():
            for key, client in zip(keys, clients, strict=True):
                client.post_result(build_id, envelope(key, r, build_id))
        with chromium() as browser:
            browser.get(serve.url + "/")
            rows = _rows(browser, "builds", "data-build-id")
            assert set(rows) == set(recipes)
            for row in rows.values():
                assert row.find_element(By.CSS_SELECTOR, ".verdict").text == "verified"
            upstream = {
                b: [e.text for e in r.find_elements(By.CSS_SELECTOR, ".upstream")]
                for b, r in rows.items()
            }
            assert upstream == {
                "up-differs": ["differs from upstream"],
                "up-matches": ["matches upstream"],
                "up-unknown": ["no upstream reference"],
            }
            # Amber for a difference, green for a match (the stylesheet's colours).
            differs = rows["up-differs"].find_element(By.CSS_SELECTOR, ".upstream")
            matches = rows["up-matches"].find_element(By.CSS_SELECTOR, ".upstream")
            assert differs.value_of_css_property("color") == "rgba(154, 103, 0, 1)"
            assert matches.value_of_css_property("color") == "rgba(26, 127, 55, 1)"
            # The build page says the same.
            rows["up-differs"].find_element(By.LINK_TEXT, "up-differs").click()
            wait_for(
                "the build page", lambda: "/builds/up-differs" in browser.current_url or None, 10
            )
            assert "differs from upstream" in browser.find_element(By.ID, "summary").text
    finally:
        http.close()
        serve.stop()
