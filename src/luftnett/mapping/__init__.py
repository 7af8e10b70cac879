"""Exposure maps: spatial interpolation of sensor readings in a metric CRS.

Pure numpy/scipy (and pyproj for coordinates); no database. The modules, each importable on
its own so that ``luftnett --help`` never loads numpy:

- :mod:`luftnett.mapping.idw`        inverse-distance weighting, the baseline
- :mod:`luftnett.mapping.variogram`  empirical variogram and weighted least-squares model fit
- :mod:`luftnett.mapping.kriging`    ordinary and universal kriging / kriging with external
  drift, with each observation's measurement-error variance on the diagonal
- :mod:`luftnett.mapping.validation` leave-one-out cross-validation summaries
- :mod:`luftnett.mapping.drift`      covariate grids (CSV ``x,y,drift``) sampled at points
- :mod:`luftnett.mapping.grid`       regular grids and GeoJSON export in WGS84
- :mod:`luftnett.mapping.crs`        WGS84 <-> ETRS89 / UTM (EPSG:25832, 25833) with pyproj
- :mod:`luftnett.mapping.points`     reading and checking point CSV files
- :mod:`luftnett.mapping.cli`        ``luftnett map interpolate``

Errors are :class:`luftnett.mapping.errors.MappingError`, a :class:`luftnett.errors.LuftnettError`.
"""
