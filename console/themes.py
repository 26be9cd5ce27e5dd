"""Console themes: one TOML file per theme, turned into Textual themes.

Themes are read from the ``themes`` package (shipped with signoff) and then from
``<config dir>/themes/*.toml``; a user theme with the same name replaces the shipped one.
A file holds the fields of :class:`textual.theme.Theme`::

    name = "my-theme"
    dark = true
    primary = "#5FA8D3"
    background = "#15181E"      # optional: secondary, accent, warning, error, success,
                                #   foreground, surface, panel, boost, luminosity_spread, text_alpha
    [variables]                 # optional Textual design variables
    block-cursor-background = "#2F4F6F"

NO_COLOR: Textual itself renders in monochrome when ``NO_COLOR`` is set (and adds the
``:nocolor`` pseudo-class); the console's widgets then mark state with text styles (reverse
cursor, bold/underlined warnings) instead of colour, so nothing depends on colour alone.
"""
from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from textual.color import ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "signoff-dark"
_COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
                 "surface", "panel", "boost")
_FLOAT_FIELDS = ("luminosity_spread", "text_alpha")


def bundled_dir() -> Path:
    from signoff import themes
    return Path(themes.__file__).parent


def user_dir() -> Path:
    from signoff.console.settings import config_dir

    return config_dir() / "themes"


def theme_from_toml(path: Path) -> Theme:
    """One theme file -> Theme; ValueError with a clear message when the file is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    known = {f.name for f in fields(Theme)}
    unknown = sorted(k for k in data if k not in known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}; a theme has "
                         f"name, primary, dark, {', '.join(_COLOR_FIELDS[1:])}, [variables]")
    name = data.get("name") or path.stem
    if not isinstance(name, str):
        raise ValueError(f"{path}: `name` must be a string")
    if not isinstance(data.get("primary"), str):
        raise ValueError(f"{path}: `primary` (a colour such as \"#5FA8D3\") is required")
    kwargs: dict = {"name": name}
    for key in _COLOR_FIELDS:
        if key in data:
            if not isinstance(data[key], str):
                raise ValueError(f"{path}: `{key}` must be a colour string such as \"#15181E\"")
            kwargs[key] = data[key]
    for key in _FLOAT_FIELDS:
        if key in data:
            if not isinstance(data[key], (int, float)):
                raise ValueError(f"{path}: `{key}` must be a number")
            kwargs[key] = float(data[key])
    if "dark" in data:
        if not isinstance(data["dark"], bool):
            raise ValueError(f"{path}: `dark` must be true or false")
        kwargs["dark"] = data["dark"]
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError(f"{path}: [variables] must map names to strings")
    kwargs["variables"] = dict(variables)
    theme = Theme(**kwargs)
    try:
        theme.to_color_system()
    except (ColorParseError, ValueError) as exc:  # bad colour strings surface here
        raise ValueError(f"{path}: {exc}") from None
    return theme


def load_themes(extra_dirs: list[Path] | None = None) -> tuple[dict[str, Theme], list[str]]:
    """All themes by name (shipped first, then the user's) and the problems found."""
    dirs = [bundled_dir(), user_dir(), *(extra_dirs or [])]
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = theme_from_toml(path)
            except (OSError, ValueError) as exc:
                problems.append(str(exc))
                continue
            themes[theme.name] = theme
    return themes, problems
