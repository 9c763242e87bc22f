"""A property-based fuzz of the public API: every odd input ends in a GeonpError or a finite, correctly shaped
output with its inputs untouched (geonp.testing.odd_inputs; the longer run is benchmarks/fuzz.py)."""

import pytest
from hypothesis import HealthCheck, given, settings

from geonp.testing import odd_cases, odd_inputs

PROMISE = ("typed error", "correct output")


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(odd_cases.cases())
def test_every_odd_input_ends_in_a_typed_error_or_a_correct_output(case):
    outcome = odd_inputs.check(case)
    assert outcome.kind in PROMISE, f"{outcome.kind}: {outcome.case}\n{outcome.detail}"


@pytest.mark.parametrize("strategy", ["predict_cases", "fit_cases", "aggregate_cases", "path_cases"])
def test_plain_inputs_are_not_refused(strategy):
    """The fuzz would pass if everything were refused: the plain version of each kind must give an output."""
    from shapely import box

    import geonp

    grid, small = odd_inputs.base_grid(), odd_inputs.base_grid((6, 7))
    plain = {
        "predict_cases": lambda: grid.np.predict(model=odd_inputs.fitted_model(), progress=False),
        "fit_cases": lambda: geonp.pretrained("gp2d-normal").fit(small, steps=0, progress=False).predict(
            small, progress=False),
        "aggregate_cases": lambda: geonp.aggregate(odd_inputs.joint_prediction(), {"all": box(-6, 49, 2, 56)}),
        "path_cases": lambda: odd_inputs.fitted_model().save(odd_inputs.saved_model().parent / "again"),
    }[strategy]
    outcome = odd_inputs.check(odd_inputs.Case(strategy, "plain", plain))
    assert outcome.kind == "correct output", outcome
