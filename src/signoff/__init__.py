"""signoff: a keyboard-driven console for human approvals, with its own workflow engine.

This folder holds only the root of the one import name. The parts live in the repository's
top-level folders and are installed beneath it by ``setup.py``'s ``package_dir``:
``console/`` is ``signoff.console``, ``engine/`` is ``signoff.engine``, ``themes/`` is
``signoff.themes`` and ``sample_flows/`` is ``signoff.sample_flows``. Nothing generic lands in
site-packages (``console`` is also the name of an unrelated package on the public index).
"""
