"""``python -m roar.operator [OPTIONS]`` is ``roar operator run [OPTIONS]``."""

import sys

from roar.cli import main

main(["operator", "run", *sys.argv[1:]])
