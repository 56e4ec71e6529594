"""``loupe eval``: measure localisation and retrieval on annotated data sets.

One module per job: ``datasets`` reads box-annotated and captioned sets, ``specs`` parses
partition-method specs, ``metrics`` holds the formulas, ``corpus`` indexes and ranks chunks,
``proposals`` / ``retrieval`` / ``captions`` / ``examples`` run one evaluation each, ``report``
prints tables and writes JSON, ``plots`` draws charts and ``cli`` wires ``loupe eval``.
"""
