"""The inspector's screenshots in docs/ were taken from the page and machines as they are now."""

from __future__ import annotations

from tests import screenshots


def test_the_screenshots_exist() -> None:
    for name in screenshots.NAMES:
        image = screenshots.IMAGES / f"inspector-{name}.png"
        assert image.is_file(), f"{image} is missing; take it with: {screenshots.COMMAND}"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_screenshots_were_taken_from_the_current_page_and_machines() -> None:
    """Every file that decides how the page looks is the one the screenshots were taken from."""
    recorded = screenshots.recorded()["sources"]
    current = screenshots.sources()
    changed = sorted(name for name in current.keys() | recorded.keys() if current.get(name) != recorded.get(name))
    assert changed == [], f"changed since the screenshots were taken: {changed}; take them with: {screenshots.COMMAND}"
