"""Runnable examples of the everyday tasks (docs/cookbook.md); each is a script:
``python examples/<name>.py --help``. A package only so that tests and mypy can import them."""
