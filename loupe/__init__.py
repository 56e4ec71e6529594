"""loupe: image search that finds things inside pictures and shows where they are."""

__version__ = '0.1.0'
