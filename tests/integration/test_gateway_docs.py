"""The interactive API page at /docs: served by the gateway from the pinned Swagger UI package,
opened in a real browser (Debian's headless Chromium) that may reach nothing but the gateway,
where it must render every operation of /openapi.json.

Without chromium the browser test skips on a newcomer's machine and fails in CI (CI=true or
ERP_TEST_REQUIRE_EXTERNAL=1), where .ci/run installs it."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from services.gateway import docs, openapi
from tests import support
from tests.integration.gateway_harness import Harness, RecordingBackend

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def gateway(redis_server, tmp_path_factory):
    backend = RecordingBackend()
    harness = Harness(redis_server, tmp_path_factory.mktemp("docs"), {"orders": f"127.0.0.1:{backend.port}"})
    yield harness
    harness.close()
    backend.stop()


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message + "; CI needs it: .ci/run installs it", pytrace=False)
        pytest.skip(message + "; the /docs page is not opened in a browser")
    return CHROMIUM


def operations() -> list[tuple[str, str, str]]:
    """(operationId, method, path) of every operation in the document the gateway serves."""
    return [(op["operationId"], method, path) for path, ops in openapi.committed()["paths"].items()
            for method, op in ops.items()]


def test_the_page_and_its_assets_come_from_the_gateway_and_the_pinned_package(gateway):
    page = requests.get(gateway.base_url + "/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("docs/") for s in sources), sources  # nothing from elsewhere
    for source in sources:
        asset = requests.get(f"{gateway.base_url}/{source}", timeout=10)
        assert asset.status_code == 200, source
    bundle = requests.get(gateway.base_url + "/docs/swagger-ui-bundle.js", timeout=10)
    from swagger_ui_bundle import swagger_ui_path

    assert bundle.content == (swagger_ui_path / "swagger-ui-bundle.js").read_bytes()
    assert bundle.headers.get("Content-Encoding") == "gzip"  # requests asks for it; 1.5 MB otherwise
    init = requests.get(gateway.base_url + "/docs/init.js", timeout=10).text
    assert 'url: "openapi.json"' in init and "validatorUrl: null" in init
    moved = requests.get(gateway.base_url + "/docs/", timeout=10, allow_redirects=False)
    assert moved.status_code == 308 and moved.headers["Location"] == "../docs"
    assert requests.get(gateway.base_url + "/docs/nothing.js", timeout=10).status_code == 404


def test_the_page_renders_every_operation_in_a_real_browser(gateway, chromium, tmp_path):
    # Every host but the gateway's resolves to nothing: a page that needed the internet would not render.
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-extensions", "--disable-default-apps", "--mute-audio",
            f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000", "--dump-dom", gateway.base_url + "/docs"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert 'id="swagger-ui"' in dom, (done.returncode, done.stderr[-2000:])
    assert "ERP mesh API" in dom, "Swagger UI did not render the document's title: " + done.stderr[-2000:]
    rendered_paths = {html.unescape(p) for p in re.findall(r'data-path="([^"]*)"', dom)}
    expected = operations()
    missing = [(op_id, method, path) for op_id, method, path in expected
               if op_id not in dom or path not in rendered_paths]
    assert not missing, f"{len(missing)} of {len(expected)} operations not rendered, e.g. {missing[:5]}"
    assert dom.count('class="opblock opblock-') >= len(expected)
    assert docs.PAGE_PATH == "/docs"
