"""Exposure maps: spatial interpolation of sensor readings in a metric CRS.

numpy/scipy, pyproj for coordinates, matplotlib for the image layer, psycopg only in
:mod:`~luftnett.mapping.queries`. The modules, each importable on its own so that
``luftnett --help`` never loads numpy:

- :mod:`luftnett.mapping.idw`        inverse-distance weighting, the baseline
- :mod:`luftnett.mapping.variogram`  empirical variogram and weighted least-squares model fit
- :mod:`luftnett.mapping.kriging`    ordinary and universal kriging / kriging with external
  drift, with each observation's measurement-error variance on the diagonal
- :mod:`luftnett.mapping.validation` leave-one-out cross-validation summaries
- :mod:`luftnett.mapping.drift`      covariate grids (CSV ``x,y,drift``) sampled at points
- :mod:`luftnett.mapping.grid`       regular grids and GeoJSON export in WGS84
- :mod:`luftnett.mapping.crs`        WGS84 <-> ETRS89 / UTM (EPSG:25832, 25833) with pyproj
- :mod:`luftnett.mapping.points`     reading and checking point CSV files
- :mod:`luftnett.mapping.period`     the hour, day or year a map describes (UTC+01 days)
- :mod:`luftnett.mapping.queries`    hourly per-site aggregates from the readings table
- :mod:`luftnett.mapping.sitestats`  per-site period values and their uncertainty (sigma)
- :mod:`luftnett.mapping.exposure`   a map from site values: grid, prediction, se, LOOCV
- :mod:`luftnett.mapping.guidelines` Norwegian limit values and criteria (data/limits.json)
- :mod:`luftnett.mapping.features`   areas and receptors from GeoJSON (examples/)
- :mod:`luftnett.mapping.ranking`    areas and receptors ranked with intervals and verdicts
- :mod:`luftnett.mapping.render`     the PNG layer and its WGS84 bounds
- :mod:`luftnett.mapping.summary`    "where to act" in Norwegian bokmål and English
- :mod:`luftnett.mapping.outputs`    a map directory's files; ranking a saved map
- :mod:`luftnett.mapping.synthetic`  maps of the synthetic city, validated against its truth
- :mod:`luftnett.mapping.cli`        ``luftnett map interpolate|build|rank|city``

Errors are :class:`luftnett.mapping.errors.MappingError`, a :class:`luftnett.errors.LuftnettError`.
"""
