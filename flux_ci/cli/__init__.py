"""The command line: the console entry's lean start (`startup`), the command specs (`specs`), typer
(`app`) and the one boundary that turns a command's outcome into its report and exit code
(`boundary`). May import every other wing; nothing imports it (`flux_ci.__main__` aside)."""
