"""The interactive API page at /docs: Swagger UI reading /openapi.json.

Swagger UI's dist files come from the pinned `swagger-ui-bundle-v2` package (pyproject.toml,
requirements.lock) and are served by the REST edge from memory: nothing is fetched from the
internet at run time, and the page's Content-Security-Policy lets the browser load nothing
from anywhere but the gateway (which also keeps Swagger UI's online validator badge off).

Links are relative (docs/..., openapi.json), so the page works behind a path prefix too.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip

from swagger_ui_bundle import swagger_ui_path

PAGE_PATH = "/docs"
ASSETS = {  # file in the package -> content type
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ERP mesh API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js" charset="utf-8"></script>
  <script src="docs/init.js" charset="utf-8"></script>
</body>
</html>
"""

# No inline script (the CSP allows none): the page starts Swagger UI from this file.
INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayOperationId: true,
    displayRequestDuration: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
};
"""


@dataclasses.dataclass(frozen=True)
class Page:
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def gzipped(self) -> bytes:
        """Compressed once, not per request: the bundle is 1.5 MB, about 450 kB gzipped."""
        return gzip.compress(self.body, compresslevel=9, mtime=0)


@functools.cache
def pages() -> dict[str, Page]:
    """Request path -> what the REST edge answers a GET with."""
    security = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"))
    cached = (("Cache-Control", "public, max-age=3600"), ("X-Content-Type-Options", "nosniff"))
    found = {
        PAGE_PATH: Page(PAGE.encode(), "text/html", (*security, ("Cache-Control", "no-cache"))),
        f"{PAGE_PATH}/init.js": Page(INIT.encode(), "text/javascript", cached),
    }
    for name, content_type in ASSETS.items():
        found[f"{PAGE_PATH}/{name}"] = Page((swagger_ui_path / name).read_bytes(), content_type, cached)
    return found
