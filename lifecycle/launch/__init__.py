"""App-image launch support: renders the process table sourced by the POSIX sh launcher."""
