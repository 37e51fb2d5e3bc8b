"""``python -m roar`` is the ``roar`` command."""

from roar.cli import main

main()
