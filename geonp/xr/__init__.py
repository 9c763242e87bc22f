"""The xarray front: the ``.np`` accessor, CF outputs, zarr/netCDF writing, maps, region aggregates."""
