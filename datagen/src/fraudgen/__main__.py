"""Entry point of ``python -m fraudgen``."""

from fraudgen.cli import main

main()
