"""A browser page watched for what goes wrong on it, and the two screen sizes the UI tests use."""

from __future__ import annotations

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


class Watched:
    """A page with everything that went wrong on it: console errors, page errors, failed requests."""

    def __init__(self, browser, viewport, url: str | None = None):
        self.context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500,
                                           has_touch=viewport["width"] < 500)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))
        self.page.on("dialog", lambda d: d.accept())
        if url:
            self.goto(url)

    def goto(self, url: str):
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def width(self) -> int:
        return self.page.evaluate("document.documentElement.scrollWidth")

    def close(self):
        self.context.close()
