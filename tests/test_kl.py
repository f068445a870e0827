import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mer_jax.kl import InvalidStdError, gaussian_kl, kl_divergence, kl_from_tables


def numpy_kl_full_covariance(mu1, s1, mu2, s2):
    """Independent reference: the general multivariate formula (Soch et al.) in float64 NumPy."""
    out = []
    for a, sa, b, sb in zip(mu1, s1, mu2, s2):
        cov1, cov2 = np.diag(np.square(sa)), np.diag(np.square(sb))
        inv2 = np.linalg.inv(cov2)
        d = b - a
        out.append(0.5 * (d @ inv2 @ d + np.trace(inv2 @ cov1)
                          - np.log(np.linalg.det(cov1) / np.linalg.det(cov2)) - len(a)))
    return np.array(out)


def random_distributions(rng, n):
    mu = rng.uniform(0, 1, (2, n, 2))
    sigma = rng.uniform(0.03, 0.3, (2, n, 2))
    return mu[0], sigma[0], mu[1], sigma[1]


def test_kl_of_a_distribution_with_itself_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma, _, _ = random_distributions(rng, 50)
    np.testing.assert_allclose(kl_divergence(mu, sigma, mu, sigma), 0.0, atol=1e-6)


def test_closed_form_cases():
    # equal variances: KL = |mu_pr - mu_gt|^2 / (2 sigma^2)
    kl = kl_divergence([[0.2, 0.4]], [[0.1, 0.1]], [[0.5, 0.4]], [[0.1, 0.1]])
    np.testing.assert_allclose(kl, [0.3 ** 2 / (2 * 0.01)], rtol=1e-5)
    # equal means, variance ratio r per dimension: KL = 1/2 sum (r - ln r - 1)
    r = (0.1 / 0.2) ** 2
    kl = kl_divergence([[0.5, 0.5]], [[0.1, 0.1]], [[0.5, 0.5]], [[0.2, 0.2]])
    np.testing.assert_allclose(kl, [r - np.log(r) - 1], rtol=1e-5)
    # the worked example: 0.5 (0.25 + 1.25 - ln 0.25 - 2)
    kl = kl_from_tables(jnp.array([0.5, 0.5, 0.1, 0.2]), jnp.array([0.6, 0.5, 0.2, 0.2]))
    np.testing.assert_allclose(kl, 0.5 * (0.25 + 1.25 - np.log(0.25) - 2), rtol=1e-5)


def test_agrees_with_independent_numpy_reference():
    rng = np.random.default_rng(1)
    args = random_distributions(rng, 500)
    np.testing.assert_allclose(kl_divergence(*args), numpy_kl_full_covariance(*args),
                               rtol=2e-5, atol=1e-5)


def test_is_asymmetric_and_nonnegative():
    rng = np.random.default_rng(2)
    a, sa, b, sb = random_distributions(rng, 200)
    forward, backward = kl_divergence(a, sa, b, sb), kl_divergence(b, sb, a, sa)
    assert np.all(forward >= 0) and not np.allclose(forward, backward)


def test_vectorized_over_leading_axes_and_jittable():
    rng = np.random.default_rng(3)
    truth = jnp.asarray(rng.uniform(0.05, 0.9, (3, 7, 4)), jnp.float32)
    pred = jnp.asarray(rng.uniform(0.05, 0.9, (3, 7, 4)), jnp.float32)
    batched = jax.jit(kl_from_tables)(truth, pred)
    assert batched.shape == (3, 7)
    vmapped = jax.vmap(kl_from_tables)(truth, pred)
    np.testing.assert_allclose(batched, vmapped, rtol=1e-6)
    np.testing.assert_allclose(batched[1, 2], kl_from_tables(truth[1, 2], pred[1, 2]), rtol=1e-6)


def test_gradients_are_finite_and_match_finite_differences():
    truth = jnp.array([0.6, 0.3, 0.15, 0.2])
    pred = jnp.array([0.5, 0.45, 0.1, 0.3])
    grad = jax.grad(lambda p: kl_from_tables(truth, p))(pred)
    assert jnp.all(jnp.isfinite(grad))
    eps = 1e-3
    for k in range(4):
        step = jnp.zeros(4).at[k].set(eps)
        numeric = (kl_from_tables(truth, pred + step) - kl_from_tables(truth, pred - step)) / (2 * eps)
        np.testing.assert_allclose(grad[k], numeric, rtol=2e-2, atol=1e-3)


def test_non_positive_std_is_a_clear_error_naming_rows():
    mu = np.full((3, 2), 0.5)
    sigma = np.full((3, 2), 0.1)
    bad = sigma.copy()
    bad[1, 0] = -0.02
    with pytest.raises(InvalidStdError, match=r"predicted standard deviation <= 0.*song_b"):
        kl_divergence(mu, sigma, mu, bad, row_names=["song_a", "song_b", "song_c"])
    bad[1, 0] = np.nan
    with pytest.raises(InvalidStdError):
        kl_divergence(mu, sigma, mu, bad)


def test_clamp_option_is_explicit():
    mu = np.full((1, 2), 0.5)
    kl = kl_divergence(mu, [[0.1, 0.1]], mu, [[-0.3, 0.1]], min_std=0.05)
    expected = kl_divergence(mu, [[0.1, 0.1]], mu, [[0.05, 0.1]])
    np.testing.assert_allclose(kl, expected)
    # inside jit nothing can raise: unclamped sigma <= 0 gives a non-finite value, never a silent number
    raw = gaussian_kl(jnp.full(2, 0.5), jnp.full(2, 0.1), jnp.full(2, 0.5), jnp.array([0.0, 0.1]))
    assert not jnp.isfinite(raw)
