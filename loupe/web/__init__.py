"""The web page that ``loupe serve`` shows at its HTTP address (static files, no build step).

The page is plain HTML, CSS and JavaScript modules that talk to the service only through its
public JSON endpoints (``/search``, ``/index``, ``/exists``, ``/recommend``, ``/duplicates``,
``/map``), as any other client does. The files ship inside the package (package data), so a
plain ``pip install`` serves them.
"""
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent
