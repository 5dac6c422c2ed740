"""Command-line entry points (``cvft-ingest``, ``cvft``). Each ``main(argv=None) -> int``."""
