"""geonp: neural processes for gridded climate and epidemiology data."""

from geonp.errors import GeonpError

__version__ = "0.1.0"

__all__ = ["GeonpError", "__version__"]
