"""The PDF board report: its numbers against the database, its escaping, its fetcher, its limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import io
import re
import statistics
import threading
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pypdfium2
import pytest
from django.utils import timezone
from pypdf import PdfReader
from weasyprint import HTML
from weasyprint.urls import URLFetchingError, fetch

from cases.models import Case
from cases.seeding import cases_seed
from cases.tests.factories import CaseFactory, InvestigationFactory
from exports.board_report import (
    BoardReportTimeoutError,
    board_report_data,
    render_board_report,
)
from exports.board_report import fetcher as fetcher_module
from exports.board_report import render as render_module
from exports.board_report.fetcher import ASSET_BASE_URL, AssetRefusedError, BundledAssetFetcher
from exports.board_report.render import board_report_html
from organizations.models import Organization
from organizations.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

NY = zoneinfo.ZoneInfo("America/New_York")
PERIOD_START = dt.date(2026, 1, 1)
PERIOD_END = dt.date(2026, 3, 31)
START = dt.datetime(2026, 1, 1, tzinfo=NY)
END = dt.datetime(2026, 4, 1, tzinfo=NY)
GENERATED = dt.datetime(2026, 4, 2, 13, 30, tzinfo=dt.UTC)
CATEGORIES = ["Fraud", "Harassment", "Theft", "Data Privacy", "Bribery & Corruption"]
SEVERITIES = ["low", "medium", "high", "critical"]


# --- helpers ----------------------------------------------------------------------------


def report_cases(org: Organization) -> Any:
    """What the export engine passes: the organization's cases created in the period."""
    return Case.objects.filter(organization=org, created_at__gte=START, created_at__lt=END)


def render_pdf(org: Organization, cases: Any, **kwargs: Any) -> tuple[PdfReader, int, bytes]:
    data = board_report_data(organization=org, cases=cases, period_start=PERIOD_START, period_end=PERIOD_END)
    stream = io.BytesIO()
    pages = render_board_report(organization=org, data=data, stream=stream, generated_at=GENERATED, **kwargs)
    pdf = stream.getvalue()
    return PdfReader(io.BytesIO(pdf)), pages, pdf


def pdf_text(reader: PdfReader) -> str:
    """All pages' text with runs of whitespace folded to one space."""
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def squeeze(text: str) -> str:
    """Text without any whitespace: table cells wrap long titles at arbitrary points."""
    return re.sub(r"\s+", "", text)


def layout(html: str) -> Any:
    """The report laid out by WeasyPrint, as the export writes it."""
    return HTML(string=html, base_url=ASSET_BASE_URL, url_fetcher=BundledAssetFetcher()).render()


def overflowing_boxes(document: Any) -> list[str]:
    """Boxes that reach past the right or bottom edge of a page's content area."""
    found = []
    for number, page in enumerate(document.pages, 1):
        box = page._page_box
        right = box.margin_width() - box.margin_right
        bottom = box.margin_height() - box.margin_bottom
        stack = [(child, type(child).__name__ == "MarginBox") for child in box.children]
        while stack:
            child, in_margin = stack.pop()
            too_wide = child.position_x + child.margin_width() > right + 0.5
            too_low = not in_margin and child.position_y + child.margin_height() > bottom + 0.5
            if too_wide or too_low:
                found.append(f"page {number}: {type(child).__name__} <{getattr(child, 'element_tag', '')}>")
            stack.extend((grandchild, in_margin) for grandchild in getattr(child, "children", []))
    return found


def ink_in_side_margins(document: Any, *, scale: float = 2) -> list[str]:
    """Where the PDF, rasterised as a reader shows it, has anything drawn in a left or right margin.

    The layout check above trusts WeasyPrint's boxes; this one looks at the pixels, so it also
    catches what is drawn outside its box (an SVG, a border, a glyph) or clipped at the page edge.
    """
    pdf = pypdfium2.PdfDocument(document.write_pdf())
    found = []
    for number, (page, laid_out) in enumerate(zip(pdf, document.pages, strict=True), 1):
        image = page.render(scale=scale).to_pil().convert("L")
        box = laid_out._page_box
        px = image.width / laid_out.width  # WeasyPrint lays out in CSS px, 1/96 in
        # One pixel of slack each side of the content box for anti-aliased edges.
        left = int(box.margin_left * px) - 1
        right = int((laid_out.width - box.margin_right) * px) + 2
        for side, strip, offset in (
            ("left", image.crop((0, 0, left, image.height)), 0),
            ("right", image.crop((right, 0, image.width, image.height)), right),
        ):
            ink = strip.point(lambda v: 255 if v < 240 else 0).getbbox()
            if ink:
                x0, y0, x1, y1 = (round(v / px) for v in (ink[0] + offset, ink[1], ink[2] + offset, ink[3]))
                found.append(f"page {number}: ink in the {side} margin at x {x0}–{x1}, y {y0}–{y1} (CSS px)")
    return found


def kpi_tiles(document: Any) -> list[list[tuple[float, float]]]:
    """The left and right border edges of the KPI tiles on the first page, row by row, in CSS px."""
    tiles = []
    stack = [document.pages[0]._page_box]
    while stack:
        box = stack.pop()
        element = getattr(box, "element", None)
        if box.element_tag == "div" and element is not None and element.get("class") == "kpi":
            tiles.append((round(box.border_box_y()), box.border_box_x(), box.border_box_x() + box.border_width()))
        else:
            stack.extend(getattr(box, "children", []))
    rows: dict[int, list[tuple[float, float]]] = {}
    for top, left, right in sorted(tiles):
        rows.setdefault(top, []).append((left, right))
    return list(rows.values())


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%"


def is_open_at_end(case: Case) -> bool:
    """Created before the end and not closed by then (closed without a date counts as closed)."""
    if case.closed_at is None:
        return case.status != "closed" and case.created_at < END
    return case.created_at < END <= case.closed_at


def days(case: Case) -> float:
    assert case.closed_at is not None
    return (case.closed_at - case.created_at).total_seconds() / 86400


@pytest.fixture
def org() -> Organization:
    return OrganizationFactory.create(name="Northwind Holdings", slug="northwind", timezone="America/New_York")


@pytest.fixture
def dataset(org: Organization) -> list[Case]:
    """60 cases in Q1 2026 with varied category, severity, status and closure, plus noise outside it."""
    cases: list[Case] = []
    for i in range(60):
        created = START + dt.timedelta(hours=36 * i + 5)
        kind = i % 4
        closed_at: dt.datetime | None = None
        if kind == 0:
            closed_at = created + dt.timedelta(days=1 + i % 9, hours=i % 5)  # may land after the period
        elif kind == 1:
            closed_at = dt.datetime(2026, 5, 15, 12, tzinfo=NY)  # closed after the period: open at its end
        status = "closed" if closed_at else ["open", "in_review", "new"][i % 3]
        substantiated = [True, False, None][i % 3] if closed_at else None
        case = CaseFactory.create(
            organization=org,
            title=f"Case number {i}",
            category=CATEGORIES[i % 5],
            severity=SEVERITIES[(i * 3) % 4],
            intake_channel=["hotline", "web", "email"][i % 3],
            business_unit=["Retail", "Finance"][i % 2],
            country=["US", "GB", "DE"][i % 3],
            is_anonymous=i % 5 == 0,
            created_at=created,
            reported_at=created,
            closed_at=closed_at,
            status=status,
            is_substantiated=substantiated,
        )
        cases.append(case)
        if i % 2 == 0:
            InvestigationFactory(case=case, number=1, finding=["substantiated", "unsubstantiated", ""][i % 3])
    # Closed status without a closing date: neither open nor closed in the period.
    cases.append(CaseFactory.create(organization=org, status="closed", created_at=START + dt.timedelta(days=3)))
    # Outside the period, and another organization: not in the report.
    CaseFactory(organization=org, created_at=START - dt.timedelta(hours=1))
    CaseFactory(organization=org, created_at=END)
    CaseFactory(created_at=START + dt.timedelta(days=1))
    return cases


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = b"body { background: red }" if self.path.endswith(".css") else b"GIF89a"
        self.send_response(200)
        self.send_header("Content-Type", "text/css" if self.path.endswith(".css") else "image/gif")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that records every request it gets."""
    requests: list[str] = []
    handler = type("Handler", (RecordingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL WeasyPrint asks the report's fetcher for."""
    calls: list[str] = []
    original = BundledAssetFetcher.fetch

    def recording(self: BundledAssetFetcher, url: str, headers: Any = None) -> Any:
        calls.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(BundledAssetFetcher, "fetch", recording)
    return calls


# --- numbers ----------------------------------------------------------------------------


def test_board_report_pdf_states_the_database_numbers(org: Organization, dataset: list[Case]) -> None:
    in_report = [c for c in dataset if START <= c.created_at < END]
    closed = [c for c in in_report if c.closed_at is not None and START <= c.closed_at < END]
    open_at_end = [c for c in in_report if is_open_at_end(c)]
    decided = [c for c in closed if c.is_substantiated is not None]
    substantiated = [c for c in decided if c.is_substantiated]
    assert report_cases(org).count() == len(in_report) == 61
    assert 0 < len(closed) < len(in_report) and len(open_at_end) > 0 and len(decided) > len(substantiated) > 0

    reader, pages, _ = render_pdf(org, report_cases(org))
    text = pdf_text(reader)

    assert f"CASES IN REPORT {len(in_report)} " in text
    assert f"CLOSED IN PERIOD {len(closed)} " in text
    assert f"OPEN AT PERIOD END {len(open_at_end)} " in text
    assert f"SUBSTANTIATION RATE {pct(len(substantiated), len(decided))} " in text
    assert f"{len(substantiated)} of {len(decided)} decided closures" in text
    assert f"MEDIAN DAYS TO CLOSE {statistics.median(days(c) for c in closed):.1f} " in text
    assert f"MEAN DAYS TO CLOSE {statistics.mean(days(c) for c in closed):.1f} " in text
    anonymous = sum(c.is_anonymous for c in in_report)
    assert f"ANONYMOUS REPORTS {pct(anonymous, len(in_report))} {anonymous} cases" in text

    # The category table: cases, open at end, closed in period, substantiation rate.
    for category, total in Counter(c.category for c in in_report).items():
        rows = [c for c in in_report if c.category == category]
        cat_closed = [c for c in closed if c.category == category]
        cat_decided = [c for c in cat_closed if c.is_substantiated is not None]
        rate = pct(sum(bool(c.is_substantiated) for c in cat_decided), len(cat_decided)) if cat_decided else "—"
        row = f"{category} {total} {sum(c in open_at_end for c in rows)} {len(cat_closed)} {rate}"
        assert row in text, row

    assert "1 January 2026 – 31 March 2026" in text
    assert "Generated 2 April 2026, 09:30 EDT (2 April 2026, 13:30 UTC)" in text
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert "Confidential — prepared for the audit committee of Northwind Holdings" in text
    assert reader.pages[0].mediabox.width > reader.pages[0].mediabox.height  # A4 landscape: the stylesheet applied


def test_board_report_data_median_ages_and_findings(org: Organization, dataset: list[Case]) -> None:
    data = board_report_data(
        organization=org, cases=report_cases(org), period_start=PERIOD_START, period_end=PERIOD_END
    )
    in_report = [c for c in dataset if START <= c.created_at < END]
    closed = [c for c in in_report if c.closed_at is not None and START <= c.closed_at < END]
    assert data.median_days_to_close == pytest.approx(statistics.median(days(c) for c in closed), abs=1e-4)
    assert data.mean_days_to_close == pytest.approx(statistics.mean(days(c) for c in closed), abs=1e-4)

    open_at_end = [c for c in in_report if is_open_at_end(c)]
    oldest = sorted(open_at_end, key=lambda c: (c.created_at, c.pk))[:10]
    assert [o.reference for o in data.oldest_open] == [c.reference for c in oldest]
    assert [o.age_days for o in data.oldest_open] == [(END - c.created_at).days for c in oldest]
    assert sum(s.count for s in data.open_by_age) == data.open_at_period_end == len(open_at_end)

    findings = Counter(
        inv.finding
        for c in in_report
        for inv in c.investigations.all()  # type: ignore[attr-defined]
    )
    assert {s.label: s.count for s in data.findings} == {
        "Substantiated": findings["substantiated"],
        "Unsubstantiated": findings["unsubstantiated"],
        "Inconclusive": 0,
        "No finding yet": findings[""],
    }
    assert data.by_month[0].label == "Jan 2026" and [m.label for m in data.by_month][-1] == "Mar 2026"
    assert sum(m.new for m in data.by_month) == len(in_report)
    assert sum(m.closed for m in data.by_month) == len(closed)


def test_board_report_months_and_ages_follow_the_organization_timezone(org: Organization) -> None:
    end = dt.datetime(2026, 7, 1, tzinfo=NY)
    # 23:30 on 31 January in New York is 04:30 on 1 February in UTC: it belongs to January.
    CaseFactory(organization=org, created_at=dt.datetime(2026, 1, 31, 23, 30, tzinfo=NY))
    for age in (0, 30, 31, 60, 61, 90, 91, 180, 181, 400):
        CaseFactory(organization=org, created_at=end - dt.timedelta(days=age, hours=1))
    data = board_report_data(
        organization=org,
        cases=Case.objects.filter(organization=org),
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 6, 30),
    )
    january = next(m for m in data.by_month if m.label == "Jan 2026")
    february = next(m for m in data.by_month if m.label == "Feb 2026")
    # January also holds the 180-day-old case (1 January, 23:00); February holds none.
    assert (january.new, february.new) == (2, 0)
    # 0–30, 31–60, 61–90, 91–180, over 180 (the January case is 150 days old).
    assert [s.count for s in data.open_by_age] == [2, 2, 2, 3, 2]


def test_board_report_matches_seeded_demo_data(org: Organization) -> None:
    cases_seed(organization_id=org.pk, cases=400, seed=7, anchor=dt.datetime(2026, 6, 30, tzinfo=dt.UTC))
    qs = Case.objects.filter(organization=org)
    data = board_report_data(organization=org, cases=qs, period_start=None, period_end=dt.date(2026, 6, 30))
    assert data.total_cases == 400
    assert data.closed_in_period == qs.filter(closed_at__isnull=False).count()
    assert data.open_at_period_end == qs.filter(closed_at__isnull=True).count()
    assert {r.category: r.total for r in data.by_category} == dict(Counter(qs.values_list("category", flat=True)))
    assert sum(s.count for s in data.by_country) == 400
    reader, pages, _ = render_pdf(org, qs)
    assert 3 <= pages <= 6


# --- escaping and fetching --------------------------------------------------------------


def test_board_report_renders_hostile_text_literally_and_fetches_nothing(
    org: Organization, http_server: tuple[str, list[str]], fetched: list[str]
) -> None:
    base, requests = http_server
    titles = [
        '<img src="file:///etc/passwd">',
        f'<link rel=stylesheet href="{base}/title.css">',
        "<style>body{background:url(file:///dev/urandom)}</style>",
        f'<img src="{base}/title.png"><svg><image href="{base}/svg.png"/></svg>',
    ]
    org.name = f'Evil <link rel="stylesheet" href="{base}/org.css"> Corp'
    org.save()
    for i, title in enumerate(titles):
        CaseFactory(
            organization=org,
            title=title,
            category=f'<img src="{base}/category-{i}.png">',
            created_at=START + dt.timedelta(hours=i),
        )
    html = board_report_html(
        organization=org,
        data=board_report_data(
            organization=org, cases=report_cases(org), period_start=PERIOD_START, period_end=PERIOD_END
        ),
        generated_at=GENERATED,
        filters_text=f'<object data="{base}/filters">',
    )
    assert "&lt;img src=&quot;file:///etc/passwd&quot;&gt;" in html
    assert "<img" not in html and "<style>body" not in html and "<object" not in html and "<image" not in html
    assert '<link rel="stylesheet" href="http' not in html

    reader, pages, pdf = render_pdf(org, report_cases(org), filters_text=f'<object data="{base}/filters">')
    text = squeeze(pdf_text(reader))
    for title in titles:
        assert squeeze(title) in text, title
    assert squeeze(f'<img src="{base}/category-0.png">') in text
    assert squeeze(org.name) in text
    # Nothing was fetched but the bundled stylesheet, and the server saw no request.
    assert fetched == ["dossier-asset:board_report.css"]
    assert requests == []
    assert not reader.attachments
    assert b"/EmbeddedFile" not in pdf


def test_board_report_fetch_detection_works(http_server: tuple[str, list[str]], fetched: list[str]) -> None:
    """Control: the default fetcher does reach the server, ours is asked and refuses."""
    base, requests = http_server
    HTML(string=f'<img src="{base}/control.png">').write_pdf()
    assert requests == ["/control.png"]
    requests.clear()
    HTML(string=f'<img src="{base}/refused.png">', url_fetcher=BundledAssetFetcher()).write_pdf()
    assert fetched == [f"{base}/refused.png"]
    assert requests == []


def test_bundled_asset_fetcher_serves_only_bundled_assets() -> None:
    response = BundledAssetFetcher().fetch("dossier-asset:board_report.css")
    assert response.content_type == "text/css"
    assert b"@page" in response.read()
    for url in [
        "file:///etc/passwd",
        "http://127.0.0.1:9/x.css",
        "https://example.com/x.css",
        "data:text/css,body{}",
        "dossier-asset:../../settings.py",
        "dossier-asset:../fetcher.py",
        "dossier-asset:assets/../../fetcher.py",
        "dossier-asset:%2e%2e/fetcher.py",
        "dossier-asset:/etc/passwd",
        "dossier-asset:board_report.css?x=1",
        "dossier-asset:missing.css",
        "dossier-asset:",
    ]:
        with pytest.raises(AssetRefusedError):
            BundledAssetFetcher().fetch(url)
        # WeasyPrint sees an ordinary failed fetch: the resource is skipped, rendering goes on.
        with pytest.raises(URLFetchingError), fetch(BundledAssetFetcher(), url):
            pass


def test_bundled_asset_fetcher_refuses_symlinks_out_of_the_folder(tmp_path: Any, monkeypatch: Any) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "ok.css").write_text("p {}")
    (tmp_path / "secret.css").write_text("secret")
    (assets / "link.css").symlink_to(tmp_path / "secret.css")
    (assets / "notes.txt").write_text("not an asset type")
    monkeypatch.setattr(fetcher_module, "ASSETS_DIR", assets)
    assert BundledAssetFetcher().fetch("dossier-asset:ok.css").read() == b"p {}"
    for name in ("link.css", "notes.txt"):
        with pytest.raises(AssetRefusedError):
            BundledAssetFetcher().fetch(f"dossier-asset:{name}")


# --- rendering --------------------------------------------------------------------------


def test_board_report_long_unbroken_text_stays_inside_the_page(org: Organization) -> None:
    org.name = "Northwind " + "N" * 190
    org.save()
    for i in range(12):
        CaseFactory.create(
            organization=org,
            title="T" * 300 if i % 2 else ("word " * 60).strip(),
            category=f"{i}-" + "C" * 60,
            business_unit="B" * 64,
            created_at=START + dt.timedelta(days=i),
        )
    data = board_report_data(
        organization=org, cases=report_cases(org), period_start=PERIOD_START, period_end=PERIOD_END
    )
    html = board_report_html(organization=org, data=data, generated_at=GENERATED, filters_text="F" * 500)
    document = layout(html)
    assert overflowing_boxes(document) == []
    assert ink_in_side_margins(document) == []


def test_board_report_kpi_tiles_share_the_page_width_inside_the_margins(org: Organization, dataset: list[Case]) -> None:
    data = board_report_data(
        organization=org, cases=report_cases(org), period_start=PERIOD_START, period_end=PERIOD_END
    )
    # The widest numbers a large organization's report can show.
    data = dataclasses.replace(
        data, total_cases=9_876_543, new_in_period=9_876_543, closed_in_period=8_765_432, open_at_period_end=1_234_567
    )
    document = layout(board_report_html(organization=org, data=data, generated_at=GENERATED))
    assert ink_in_side_margins(document) == []
    assert overflowing_boxes(document) == []
    page = document.pages[0]._page_box
    left, right = page.margin_left, document.pages[0].width - page.margin_right

    rows = kpi_tiles(document)
    assert [len(row) for row in rows] == [4, 4]
    for row in rows:
        widths = [b - a for a, b in row]
        assert max(widths) - min(widths) < 0.5, row  # four equal tiles
        assert row[0][0] == pytest.approx(left, abs=0.5) and row[-1][1] == pytest.approx(right, abs=0.5), row


def test_board_report_renders_the_same_page_count_twice(org: Organization, dataset: list[Case]) -> None:
    _, first, pdf_one = render_pdf(org, report_cases(org))
    _, second, pdf_two = render_pdf(org, report_cases(org))
    assert first == second == len(PdfReader(io.BytesIO(pdf_one)).pages)
    assert len(pdf_one) == pytest.approx(len(pdf_two), rel=0.01)


def test_board_report_without_cases_says_so(org: Organization) -> None:
    reader, pages, pdf = render_pdf(org, report_cases(org))
    text = pdf_text(reader)
    assert pdf.startswith(b"%PDF-") and pages == len(reader.pages) >= 1
    assert "There are no cases for this period and these filters" in text
    assert "CASES IN REPORT 0 " in text and "SUBSTANTIATION RATE — " in text


def test_board_report_all_time_period(org: Organization, dataset: list[Case]) -> None:
    data = board_report_data(
        organization=org,
        cases=Case.objects.filter(organization=org),
        period_start=None,
        period_end=None,
        as_of=dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC),
    )
    assert data.total_cases == data.new_in_period == 63
    assert data.by_month[0].label == "Dec 2025" and data.by_month[-1].label == "Jun 2026"
    stream = io.BytesIO()
    render_board_report(organization=org, data=data, stream=stream, generated_at=timezone.now())
    assert "All cases to 1 June 2026" in pdf_text(PdfReader(stream))


def test_board_report_long_spans_are_shown_by_quarter(org: Organization) -> None:
    for year in range(2021, 2026):
        CaseFactory.create(organization=org, created_at=dt.datetime(year, 5, 1, tzinfo=NY))
    data = board_report_data(
        organization=org,
        cases=Case.objects.filter(organization=org),
        period_start=None,
        period_end=dt.date(2025, 12, 31),
    )
    assert data.trend_unit == "quarter"
    assert [p.label for p in data.by_month][:2] == ["2021 Q2", "2021 Q3"] and data.by_month[-1].label == "2025 Q4"
    assert [p.new for p in data.by_month if p.new] == [1, 1, 1, 1, 1]


def test_board_report_very_long_spans_are_shown_by_year(org: Organization) -> None:
    CaseFactory.create(organization=org, created_at=dt.datetime(2010, 5, 1, tzinfo=NY))
    CaseFactory.create(organization=org, created_at=dt.datetime(2025, 5, 1, tzinfo=NY))
    data = board_report_data(
        organization=org,
        cases=Case.objects.filter(organization=org),
        period_start=None,
        period_end=dt.date(2025, 12, 31),
    )
    assert data.trend_unit == "year"
    assert [p.label for p in data.by_month] == [str(year) for year in range(2010, 2026)]
    assert [p.new for p in data.by_month] == [1] + [0] * 14 + [1]


def test_board_report_gives_up_after_its_time_limit(org: Organization, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(html: str) -> tuple[bytes, int]:
        release.wait(10)
        return b"late", 1

    monkeypatch.setattr(render_module, "_html_to_pdf", stuck)
    data = board_report_data(
        organization=org, cases=report_cases(org), period_start=PERIOD_START, period_end=PERIOD_END
    )
    stream = io.BytesIO()
    try:
        with pytest.raises(BoardReportTimeoutError, match=r"longer than 0\.2 s"):
            render_board_report(organization=org, data=data, stream=stream, generated_at=GENERATED, timeout_seconds=0.2)  # type: ignore[arg-type]
    finally:
        release.set()
    assert stream.getvalue() == b""
