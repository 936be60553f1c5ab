"""Entry point of the frozen ``lifecycle`` executable: the name it was called by picks the phase."""

from lifecycle.cli.main import main

main()
