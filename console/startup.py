"""The `signoff` program's entry point: the garbage collector is held off while it starts.

Start-up creates a few hundred thousand objects (modules, classes, Textual's CSS rules, the
first rows) that nearly all live until exit, and Python's cyclic collector would walk them
again and again while they are being made: about 35 ms of a 300 ms console start on the
benchmark machine (see the README's "Benchmarks"). So :func:`main` switches the collector off
before anything is imported, and :func:`release_collector` switches it back on once the
console has painted its first screen (or, for every other command, once the command line
is parsed). Everything alive at that point is frozen out of later collections (`gc.freeze`),
which also keeps the collector's pauses short while the console runs on a long list.

Only the program's own start holds the collector: importing `console.cli` (tests, other
programs) leaves the process's collector settings alone.
"""
from __future__ import annotations

import gc

_held = False


def hold_collector() -> None:
    """Switch the cyclic collector off until :func:`release_collector`."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release_collector() -> None:
    """Freeze what start-up made and switch the collector back on (only if we held it)."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()


def main() -> None:
    """`signoff` (the console script) and `python -m signoff`."""
    hold_collector()
    from signoff.console.cli import main as cli_main

    cli_main()
