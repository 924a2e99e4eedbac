"""What the `webhooks dev` banner says about failure emails follows the settings it runs with."""

from __future__ import annotations

from app.core.settings import Settings
from app.run.development import DemoKeys, banner

KEYS = DemoKeys("demo", "pwk_company", "pwk_publisher")

PORTAL_URL = "http://127.0.0.1:8000/portal/open?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def test_with_the_defaults_it_says_an_hour_and_how_to_see_an_email_sooner() -> None:
    text = banner(Settings(database_url="postgresql://db"), KEYS, 8000, PORTAL_URL)

    assert "after 10 attempts 360 s apart" in text
    assert "about 59 min after the publish" in text
    assert "WEBHOOKS_EMAIL_WINDOW_SECONDS=0 make dev" in text


def test_with_quick_settings_it_says_seconds_and_suggests_nothing() -> None:
    settings = Settings(
        database_url="postgresql://db",
        retry_interval_seconds=5,
        max_attempts=3,
        email_window_seconds=0,
    )

    text = banner(settings, KEYS, 8000, PORTAL_URL)

    assert "after 3 attempts 5 s apart" in text
    assert "about 10 s after the publish" in text
    assert "make dev" not in text
