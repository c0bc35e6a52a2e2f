"""The time an expiring image has left, as the gallery shows it ("5 min left"). The
same words as static/expiry.js `timeLeft`, which keeps them current in the page."""

from __future__ import annotations

from datetime import UTC, datetime


def time_left(expires_at: str | None, now: datetime | None = None) -> str:
    """For an ISO 8601 UTC time (`…Z`, as the image JSON has it): under an hour in
    minutes (rounded up), under two days in hours, else in days; "Expired" after it."""
    if not expires_at:
        return ""
    end = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    seconds = (end - (now or datetime.now(UTC))).total_seconds()
    if seconds <= 0:
        return "Expired"
    if seconds < 3600:
        return f"{-int(-seconds // 60)} min left"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h left"
    return f"{int(seconds // 86400)} d left"
