"""Thin typer CLI: argv -> settings -> phase. The one place that maps errors to exit codes."""
