"""The package version, in one place: setup.cfg and the server read it here."""

__version__ = "0.1.0"
