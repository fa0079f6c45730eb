"""The one feature plan (features/plan.py): built once from the requests, the same values for the readout's
model-driven extraction and the cohort's full one."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
from deep_testdata import ellipsoid_case

from CervicalAILib.features.plan import FeaturePlan, FeatureRequest
from CervicalAILib.features.radiomic import default_settings_path, load_settings
from CervicalAILib.registration.masks import SequenceMask


@pytest.fixture(scope="module")
def settings():
    """The shipped T2W settings cut down to the original image and two classes (fast), and a variant."""
    params = copy.deepcopy(load_settings("T2W", default_settings_path("T2W")))
    params["imageType"] = {"Original": {}}
    params["featureClass"] = {"firstorder": None, "glcm": None}
    coarser = copy.deepcopy(params)
    coarser["setting"]["binWidth"] = 40
    return params, coarser


@pytest.fixture(scope="module")
def case():
    image, label = ellipsoid_case(size=(48, 48, 12), center_mm=(19.0, 19.0, 24.0), radii_mm=(9.0, 8.0, 12.0),
                                  texture=60.0, seed=3)
    return {"T2W": image}, {"T2W": SequenceMask(label, "same grid")}


NAMES = ("T2W_original_firstorder_Mean", "T2W_original_glcm_Contrast")


def test_requests_with_the_same_settings_share_one_extraction(settings):
    params, coarser = settings
    a = FeatureRequest("A", (NAMES[0],), {"T2W": params})
    b = FeatureRequest("B", NAMES, {"T2W": copy.deepcopy(params)})
    c = FeatureRequest("C", (NAMES[1], "ADC_original_firstorder_Mean"), {"T2W": coarser})
    plan = FeaturePlan.for_models([a, b, c], {"T2W"})  # the case has no ADC: skipped, nothing imputed
    assert [(s.role, s.names) for s in plan.radiomics] == [("T2W", NAMES), ("T2W", (NAMES[1],))]
    assert plan.radiomics[0].settings_sha256 != plan.radiomics[1].settings_sha256 and plan.deep == ()
    assert pickle.loads(pickle.dumps(plan)) == plan  # plain data: it travels to process-pool and Dask workers


def test_model_driven_values_equal_the_full_extraction(settings, case):
    params, coarser = settings
    images, masks = case
    a = FeatureRequest("A", NAMES, {"T2W": params})
    c = FeatureRequest("C", NAMES, {"T2W": coarser})
    warnings: list[str] = []
    values = FeaturePlan.for_models([a, c], {"T2W"}).apply(images, masks, warnings=warnings)
    full = FeaturePlan.full(["T2W"], {"T2W": params}, []).apply(images, masks, warnings=[]).by_component["radiomics:T2W"]
    assert len(full) > 20 and set(NAMES) <= set(full)
    assert values.for_request(a) == {name: full[name] for name in NAMES}
    by_c = values.for_request(c)  # its own settings: the same names, another texture value
    assert list(by_c) == list(NAMES) and by_c[NAMES[0]] == full[NAMES[0]]
    assert not math.isclose(by_c[NAMES[1]], full[NAMES[1]])
    assert values.for_request(FeatureRequest("none", NAMES, {})) == {}  # no settings for the T2W: nothing
