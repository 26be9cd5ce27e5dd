"""``python -m signoff``: the same entry point as the ``signoff`` console script."""

from signoff.console.startup import main

if __name__ == "__main__":
    main()
