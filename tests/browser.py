"""Playwright driving Debian's chromium (no browser download), for admin tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = "/usr/bin/chromium"
# The closed network of CI refuses chromium's background connections; keep it quiet.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def browser_page(viewport: ViewportSize | None = None) -> Iterator[Any]:
    """A fresh headless chromium page."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's ORM calls are
    # still plain synchronous calls, so Django's async-safety guard does not apply.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def admin_login(page: Any, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


# axe-core's impact levels; the browser tests fail on the two that block people.
BLOCKING = ("serious", "critical")


def accessibility_violations(page: Any, *, impacts: tuple[str, ...] | None = BLOCKING) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (all of them when ``impacts`` is None)."""
    from axe_playwright_python.sync_playwright import Axe

    # axe's default rules (WCAG 2.0–2.2 A and AA, best practices); the script ships with the package.
    options = {"resultTypes": ["violations"]}
    violations: list[dict[str, Any]] = Axe().run(page, options=options).response["violations"]
    return [v for v in violations if impacts is None or v["impact"] in impacts]


def accessibility_report(page: Any, *, impacts: tuple[str, ...] | None = BLOCKING) -> str:
    """The violations, one rule a paragraph with the elements it found; empty when there are none."""
    lines = []
    for violation in accessibility_violations(page, impacts=impacts):
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} — {violation['helpUrl']}")
        for node in violation["nodes"][:8]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node.get('failureSummary', '').strip()}")
            lines.append(f"        {node['html'][:200]}")
        if len(violation["nodes"]) > 8:
            lines.append(f"    … and {len(violation['nodes']) - 8} more")
    return "\n".join(lines)


def assert_accessible(page: Any) -> None:
    """Fail when axe-core finds a serious or critical violation on the page as it is now."""
    report = accessibility_report(page)
    assert not report, f"axe-core on {page.url}:\n{report}"


def schedule_rule_fill(page: Any, *, day: str, time: str, zone: str = "Europe/London", expect: str = "") -> None:
    """On the schedule form: a monthly rule on ``day`` at ``time`` in ``zone``, then wait for
    the live preview to list five runs whose ISO times all contain ``expect`` (``T<time>``
    by default; give the day too, ``-01T08:00``, so a preview of earlier inputs never passes)."""
    page.select_option("#id_kind", "monthly")
    page.select_option("#id_day_of_month", day)
    page.fill("#id_time", time)
    page.fill("#id_timezone", zone)
    page.wait_for_function(
        "([expect]) => { const runs = [...document.querySelectorAll('#schedule-next-runs li')];"
        " return runs.length === 5 && runs.every(li => li.dataset.iso.includes(expect)); }",
        arg=[expect or f"T{time}"],
    )
