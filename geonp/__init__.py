"""geonp: neural processes for gridded climate and epidemiology data.

``import geonp`` registers the ``.np`` accessor on ``xr.DataArray`` and ``xr.Dataset``.
"""

__version__ = "0.1.0"

from geonp import design  # noqa: E402,F401  (geonp.design.next_sites)
from geonp.errors import GeonpError  # noqa: E402
from geonp.estimator.estimator import ARCHITECTURES, NeuralProcess, NotFittedError, load, pretrained  # noqa: E402
from geonp.xr import accessor as _accessor  # noqa: E402,F401  (registers .np)
from geonp.xr.aggregate import aggregate  # noqa: E402


def plot(ds, variables=("mean", "std"), **kwargs):
    """Maps of a prediction (mean and uncertainty side by side); see :func:`geonp.xr.maps.plot`."""
    from geonp.xr.maps import plot as _plot

    return _plot(ds, variables, **kwargs)


__all__ = ["ARCHITECTURES", "GeonpError", "NeuralProcess", "NotFittedError", "aggregate", "design", "load", "plot",
           "pretrained", "__version__"]
