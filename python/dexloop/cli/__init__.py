"""The ``dexloop`` command line: ``dexloop <command> [--flag value ...]``; see ``dexloop --help``."""
