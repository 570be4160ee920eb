"""One module per wrapped CLI: argv builders and pure parsers of the tool's (machine) output."""
