"""The exact Gaussian-process oracle: the best predictive a model can reach on GP tasks.

Given each task's true hyperparameters, the posterior at the targets is

    mean = K_tc (K_cc + s^2 I)^-1 y_c
    var  = diag(K_tt) - diag(K_tc (K_cc + s^2 I)^-1 K_ct) + jitter

computed by Cholesky factorisation in float64 (numpy/scipy), one task at a time.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from geonp.tasks import kernels
from geonp.tasks.batch import Batch
from geonp.tasks.gp import GPHyperparameters


def gp_posterior(batch: Batch, hyper: GPHyperparameters, kernel_names=kernels.KERNELS):
    """Exact posterior mean and std ``[B, Nt, 1]`` at the targets of every task."""
    x_c = np.asarray(batch.meta_ctx["space"], np.float64)
    y_c = np.asarray(batch.y_ctx, np.float64)[..., 0]
    m_c = np.asarray(batch.mask_ctx, bool)
    x_t = np.asarray(batch.meta_tgt["space"], np.float64)
    means, stds = [], []
    for b in range(x_c.shape[0]):
        name = kernel_names[int(hyper.kernel[b])]
        ls, period, noise = float(hyper.lengthscale[b]), float(hyper.period[b]), float(hyper.noise_std[b])
        xc, yc = x_c[b][m_c[b]], y_c[b][m_c[b]]
        k_cc = kernels.covariance(name, xc, xc, ls, period) + noise**2 * np.eye(len(xc))
        k_tc = kernels.covariance(name, x_t[b], xc, ls, period)
        factor = cho_factor(k_cc, lower=True)
        mean = k_tc @ cho_solve(factor, yc)
        half = np.linalg.solve(np.tril(factor[0]), k_tc.T)  # L^-1 K_ct
        var = 1.0 - np.sum(half**2, axis=0) + hyper.jitter  # unit-variance kernels: K_tt diagonal = 1
        means.append(mean)
        stds.append(np.sqrt(np.maximum(var, hyper.jitter)))
    return np.stack(means)[..., None], np.stack(stds)[..., None]
