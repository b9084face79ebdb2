"""The window carries radview's icon (resources/icons, drawn by packaging/make_icons.py)."""

from __future__ import annotations


def test_the_application_icon_has_every_drawn_size(qtbot) -> None:
    from viewer.qt.app import application_icon, get_app

    icon = application_icon()
    assert sorted(size.width() for size in icon.availableSizes()) == [16, 24, 32, 48, 64, 128, 256, 512]
    image = icon.pixmap(64, 64).toImage()
    assert image.width() == 64 and image.pixelColor(32, 32).alpha() == 255  # drawn, not a blank square
    assert not get_app().windowIcon().isNull()
