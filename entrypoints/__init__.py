"""The verbs' command lines: each parses its MLproject parameters into the verb's configuration
and calls one function. Run as modules from the project root, e.g. ``python -m entrypoints.train``."""
