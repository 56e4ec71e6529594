"""The repository's flows/ and executors/, installed here by a wheel (see setup.py).

A checkout (or an editable install) uses its own top-level folders instead: loupe.flows finds
whichever is there, so loupe runs from any working directory either way.
"""
