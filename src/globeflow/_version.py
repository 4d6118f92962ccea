"""The version of globeflow (read by the package metadata, the CLI's --version and reports)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
