"""Times on the workspace: on the organization's (or schedule's) clock, the zone named, and
how far away they are ('in 3 h', '20 min ago')."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


def relative(moment: dt.datetime, now: dt.datetime) -> str:
    """'in 3 h', '5 min ago', 'in 2 days'."""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 60:
        return "now"
    if span < 3600:
        amount = f"{round(span / 60)} min"
    elif span < 48 * 3600:
        amount = f"{round(span / 3600)} h"
    else:
        amount = f"{round(span / 86400)} days"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


@register.simple_tag
def when(moment: dt.datetime | None, zone_name: str = "UTC", show_relative: bool = True) -> SafeString | str:
    """``moment`` on ``zone_name``'s clock with the zone named, and relative to now."""
    if moment is None:
        return "—"
    try:
        zone = ZoneInfo(zone_name or "UTC")
    except (ValueError, KeyError, OSError):
        zone, zone_name = ZoneInfo("UTC"), "UTC"
    local = moment.astimezone(zone)
    abbreviation = local.tzname() or ""
    named = (
        zone_name
        if abbreviation in ("", "UTC", zone_name) or not abbreviation.isalpha()
        else f"{zone_name}, {abbreviation}"
    )
    text = format_html(
        '<time datetime="{}" title="{} UTC">{}</time> <span class="zone">({})</span>',
        local.isoformat(),
        f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M}",
        f"{local:%a %d %b %Y, %H:%M}",
        named,
    )
    if show_relative:
        text = format_html('{} <span class="relative">· {}</span>', text, relative(moment, timezone.now()))
    return text
