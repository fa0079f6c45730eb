"""The shipped networks (cervix-tumor-seg-mpmri 2.x and the T2WI-only fallback) on what users bring.

- A real male pelvis (ProstateX-0000, ../shared/refdata): no cervix or uterus, so no tumour
  contour, the gate's sentence, exit status 3, the out-of-distribution score above its
  threshold; the bladder (present in every pelvis) found, and found where the urine is. The
  T2WI-only fallback ends at the gate too, with the flag (it takes some of the male pelvis for
  uterus, but finds too little cervix; its organ outlines on real images are rougher and are not
  checked here). The same with the T2WI as another site's protocol would give it (steeper
  contrast, thicker slices).
- A blank series and a 2D image: the gate or a clear error, never a contour; a real brain MRI
  (nibabel's test data), with and without DWI/ADC: the gate.
- Held-out synthetic patients with the T2WI planned axial, as many sites plan it (the networks before
  2.5.0 and T2WI-only 2.2.0 had seen oblique axial T2WIs only), through both networks: each tumour found,
  the organs drawn, no OOD flag. The first of them with its series resampled sagittal: segmented, with a
  sentence naming the plane (the shipped bundles declare the slice planes they were trained on).
The synthetic side as generated (a held-out case gets its tumour) is checked by the demo test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from segmentation_testdata import sagittal_grid

from CervicalAILib.bundles.defaults import default_bundle_path
from CervicalAILib.bundles.format import load_bundle
from CervicalAILib.cli import main
from CervicalAILib.contracts.label_table import label_mask, name_to_values_table, read_label_table
from CervicalAILib.io.case import write_case
from CervicalAILib.io.geometry import direction_matrix, orientation_label, slice_normal
from CervicalAILib.io.measurements import dice, mask_dice
from CervicalAILib.research.synth.shapes import rotation_matrix
from CervicalAILib.segmentation.anatomy import (
    DEFAULT_ORGAN_MIN_ML,
    NO_ANATOMY_MESSAGE,
    NO_ANATOMY_STATUS,
    NO_PRIMARY_MESSAGE,
    NO_PRIMARY_STATUS,
)
from CervicalAILib.study.load import load_study
from conftest import refdata_path


def _shipped_label(purpose: str) -> str:
    """The label of the shipped segmentation bundle for `purpose` ("segmentation", "segmentation-t2")."""
    return load_bundle(default_bundle_path(purpose), task="segmentation").label


@pytest.fixture(scope="module")
def shipped():
    bundle = load_bundle(default_bundle_path("segmentation"), task="segmentation")
    if "cervix" not in json.dumps(bundle.manifest):
        pytest.fail(f"the shipped model {bundle.label} has no cervix output: the anatomy gate cannot run")
    return bundle


def assert_gated(gate: dict) -> None:
    """The gate refused, for one of its two stated reasons, and the figures it reports bear the reason out."""
    settings, found = gate["settings"], gate["anatomy_found_ml"]
    assert gate["applied"] and gate["anatomy_found"] is False
    too_little = gate["anatomy_ml"] < settings["min_ml"]
    no_primary = gate.get("primary_site_ml", found.get(settings["primary"], 0.0)) < settings.get("min_primary_ml", 0.0)
    assert too_little or no_primary
    assert gate["reason"].startswith(f"{settings['primary']} " if not too_little else " + ".join(settings["required"]))
    # the sentence names what was missing: both organs, or (a uterus found) the cervix
    assert (gate["status"], gate["message"]) == (
        (NO_ANATOMY_STATUS, NO_ANATOMY_MESSAGE) if too_little else (NO_PRIMARY_STATUS, NO_PRIMARY_MESSAGE))


@pytest.mark.slow
def test_real_male_pelvis_gets_the_gate_sentence_and_its_bladder(shipped, tmp_path, capsys):
    study = refdata_path("mri", "ProstateX-0000_dicom")
    out = tmp_path / "seg"
    assert main(["segment", str(study), "--out", str(out)]) == 3
    printed = capsys.readouterr().out
    assert not (out / "tumor.nii.gz").exists()
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["tumor_found"] is False and summary["model"]["label"] == shipped.label
    assert_gated(summary["anatomy_gate"])
    assert summary["status"] == summary["anatomy_gate"]["status"] and summary["anatomy_gate"]["message"] in printed
    assert summary["ood"]["available"] and summary["ood"]["score"] > 1.0 and summary["ood"]["unusual"]
    organs = {organ["name"]: organ for organ in summary["organs"]}
    assert 20.0 < organs["bladder"]["volume_ml"] < 600.0  # a filled adult bladder, not a speck or the pelvis
    # where it is: the voxels called bladder hold urine (bright on T2WI, brighter than most of the body),
    # and lie in front of the rectum (LPS: a smaller y is anterior)
    t2 = sitk.GetArrayFromImage(load_study(study).image("T2W"))
    organ_image = sitk.ReadImage(str(out / "organs.nii.gz"))
    labels = sitk.GetArrayFromImage(organ_image)
    table = name_to_values_table(json.loads((out / "organs.json").read_text()), "organs.json")  # the engine's reader
    bladder = label_mask(labels, table["bladder"])
    body = t2 > np.percentile(t2, 50)
    assert bladder.sum() > 1000
    assert np.median(t2[bladder]) > np.percentile(t2[body & ~bladder], 75)
    rectum = label_mask(labels, table["rectum"])
    # The shipped networks barely find this study's rectum (2.3.0: 0.45 mL, 2.4.0: a 0.04 mL speck, both under
    # the 0.5 mL organ floor, so "not found"; 2.5.0: 1.6 mL; 2.5.1: 1.1 mL; docs/segmentation.md "What still fails"). A rectum
    # reported found is at least the floor and lies behind the bladder.
    assert organs["rectum"]["found"] is bool(rectum.any()) and organs["rectum"]["found"] is (organs["rectum"]["volume_ml"] > 0)
    if organs["rectum"]["found"]:
        assert organs["rectum"]["volume_ml"] >= DEFAULT_ORGAN_MIN_ML

        def centre_lps(mask):
            z, y, x = np.argwhere(mask).mean(axis=0)
            return organ_image.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))

        assert centre_lps(rectum)[1] - centre_lps(bladder)[1] > 20.0


@pytest.mark.slow
def test_real_male_pelvis_t2_only_gets_the_gate_sentence_too(tmp_path, capsys):
    """The T2WI-only fallback (a study without DWI/ADC) has organ outputs too, so the gate runs there as well.
    2.1.1 found under 5 mL of cervix + uterus here ("no cervix or uterus recognised"); 2.2.0 takes 6.3 mL of the
    male pelvis for uterus but finds 0.65 mL of cervix, so its primary-site test refuses ("no cervix recognised")."""
    out = tmp_path / "seg"
    assert main(["segment", str(refdata_path("mri", "ProstateX-0000_dicom")), "--out", str(out), "--t2-only"]) == 3
    printed = capsys.readouterr().out
    assert not (out / "tumor.nii.gz").exists()
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["model"]["label"] == _shipped_label("segmentation-t2") and summary["tumor_found"] is False
    assert_gated(summary["anatomy_gate"])
    assert f"{summary['anatomy_gate']['message']}: no tumour contour" in printed  # the gate's sentence, printed
    assert summary["ood"]["score"] > 1.0 and summary["ood"]["unusual"]


def _steeper_contrast(image: sitk.Image) -> sitk.Image:
    """Another scanner's T2WI contrast: intensities raised to the power 1.6 (dark tissue darker)."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    top = float(array.max())
    out = sitk.GetImageFromArray((np.power(np.clip(array, 0, None) / top, 1.6) * top).astype(np.float32))
    out.CopyInformation(image)
    return out


def _thick_slices(image: sitk.Image) -> sitk.Image:
    """Another protocol's T2WI: 5 mm slices instead of 3.6 mm."""
    spacing = (image.GetSpacing()[0], image.GetSpacing()[1], 5.0)
    size = [image.GetSize()[0], image.GetSize()[1], int(image.GetSize()[2] * image.GetSpacing()[2] / 5.0)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


@pytest.mark.slow
@pytest.mark.parametrize("network", ["default", "T2WI-only"])
@pytest.mark.parametrize("variation", [_steeper_contrast, _thick_slices], ids=["steeper contrast", "5 mm slices"])
def test_real_male_pelvis_gated_under_another_sites_protocol(network, variation, shipped):
    """The gate does not hang on this one study's look: its T2WI as another site would acquire it still
    ends at the gate with no tumour (two of the twenty variations in Testing/benchmarks/bench_gate_variation.py:
    the steeper contrast gives the T2WI-only network 2.2.0 8.4 mL of "uterus", which only the primary-site test
    refuses; the 5 mm slices give the default network one of its lowest OOD scores, 2.5)."""
    from CervicalAILib.pipeline.segment import load_images
    from CervicalAILib.segmentation import segment_case

    images = load_images(refdata_path("mri", "ProstateX-0000_dicom")).images
    t2 = variation(images["T2W"])
    assert t2.GetSize() != images["T2W"].GetSize() or not np.allclose(
        sitk.GetArrayViewFromImage(t2), sitk.GetArrayViewFromImage(images["T2W"]))  # the variation changed it
    images = {"T2W": t2} if network == "T2WI-only" else {**images, "T2W": t2}
    summary = segment_case(images).summary
    assert summary["model"]["label"] == _shipped_label("segmentation" if network == "default" else "segmentation-t2")
    assert summary["status"] == summary["anatomy_gate"]["status"] and summary["tumor_found"] is False
    assert summary["volume_ml"] == 0.0
    assert_gated(summary["anatomy_gate"])


def _larger_patient(images: dict[str, sitk.Image], factor: float) -> dict[str, sitk.Image]:
    """The same pelvis `factor` times as large (every series' voxels scaled about the T2WI's centre)."""
    t2 = images["T2W"]
    centre = np.array(t2.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in t2.GetSize()]))
    out = {}
    for role, image in images.items():
        scaled = sitk.Image(image)
        scaled.SetSpacing([s * factor for s in image.GetSpacing()])
        scaled.SetOrigin([float(v) for v in centre + factor * (np.array(image.GetOrigin()) - centre)])
        out[role] = scaled
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("network", "factor"), [("T2WI-only", 1.2), ("default", 1.35)])
def test_a_larger_male_pelvis_is_gated_by_the_primary_site(network, factor):
    """A larger man's pelvis (ProstateX-0000 scaled up) can get more "uterus" than the 5 mL test allows: the
    T2WI-only network 7.7 mL at x1.2, the default network 2.5.1 5.2 mL at x1.35 (its uterus cut at 0.3;
    2.5.0, cut at 0.5: 4.0 mL; bench_gate_variation.py). Then only the primary-site test (cervix + attached tumour under min_primary_ml)
    stops it; with 2.1.0's min_primary_ml 0 the T2WI-only network reported "no tumour found" with the anatomy
    recognised."""
    from CervicalAILib.pipeline.segment import load_images
    from CervicalAILib.segmentation import segment_case

    images = _larger_patient(load_images(refdata_path("mri", "ProstateX-0000_dicom")).images, factor)
    summary = segment_case({"T2W": images["T2W"]} if network == "T2WI-only" else images).summary
    gate = summary["anatomy_gate"]
    assert summary["tumor_found"] is False and summary["volume_ml"] == 0.0
    assert_gated(gate)
    if gate["anatomy_ml"] >= gate["settings"]["min_ml"]:  # the uterus passed: the primary site refused
        assert gate["status"] == NO_PRIMARY_STATUS and gate["primary_site_ml"] < gate["settings"]["min_primary_ml"]
    if network == "T2WI-only":  # the case this test was written for: well over the 5 mL test
        assert gate["anatomy_ml"] > 6.0 and gate["status"] == NO_PRIMARY_STATUS


def _oblique_slab(images: dict[str, sitk.Image], degrees: float) -> dict[str, sitk.Image]:
    """Every series re-acquired in a slab tilted `degrees` about left-right (an oblique axial plan): the anatomy
    stays where it is, each grid turns about its own centre."""
    tilt = rotation_matrix(rx=float(np.radians(degrees)))
    out = {}
    for role, image in images.items():
        direction = tilt @ direction_matrix(image)
        centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
        origin = centre - direction @ (np.asarray(image.GetSpacing()) * (np.asarray(image.GetSize()) - 1) / 2)
        out[role] = sitk.Resample(image, image.GetSize(), sitk.Transform(), sitk.sitkLinear,
                                  [float(v) for v in origin], image.GetSpacing(), [float(v) for v in direction.ravel()],
                                  0.0, sitk.sitkFloat32)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("network", ["default", "T2WI-only"])
def test_an_oblique_slab_of_the_male_pelvis_is_gated(network):
    """Cervical MRI is often planned oblique, perpendicular to the canal. The male pelvis re-acquired in a slab
    tilted 40 degrees gave the T2WI-only network 2.1.1 1.57 mL of cervix + attached tumour against its 2 mL
    min_primary_ml, then the least margin in bench_gate_variation.py (2.2.0: 0.95 mL); both networks must still
    end at the gate."""
    from CervicalAILib.pipeline.segment import load_images
    from CervicalAILib.segmentation import segment_case

    acquired = load_images(refdata_path("mri", "ProstateX-0000_dicom")).images
    images = _oblique_slab(acquired, 40.0)
    normals = [slice_normal(image) for image in (acquired["T2W"], images["T2W"])]
    assert np.degrees(np.arccos(abs(float(normals[0] @ normals[1])))) == pytest.approx(40.0, abs=0.1)  # slab turned
    summary = segment_case({"T2W": images["T2W"]} if network == "T2WI-only" else images).summary
    assert summary["tumor_found"] is False and summary["volume_ml"] == 0.0
    assert_gated(summary["anatomy_gate"])


def test_blank_series_gets_a_clear_error_never_a_contour(shipped, tmp_path, capsys):
    blank = sitk.Image(96, 96, 20, sitk.sitkFloat32)
    blank.SetSpacing((1.0, 1.0, 4.0))
    case = write_case(tmp_path / "blank", {"T2W": blank, "ADC": sitk.Image(blank), "DWI": sitk.Image(blank)})
    out = tmp_path / "seg"
    status = main(["segment", str(case), "--out", str(out)])
    captured = capsys.readouterr()
    assert status in (2, 3) and not (out / "tumor.nii.gz").exists()
    if status == 3:  # the gate
        assert NO_ANATOMY_MESSAGE in captured.out
    else:  # a clear error: one line naming the file
        assert "T2W" in captured.err and "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_2d_image_is_a_clear_error_not_a_contour(shipped, tmp_path, capsys):
    flat = sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 20, (1, 128, 128)).astype(np.float32))
    case = write_case(tmp_path / "flat", {"T2W": flat})
    out = tmp_path / "seg"
    status = main(["segment", str(case), "--out", str(out), "--t2-only"])
    captured = capsys.readouterr()
    assert status == 2 and not (out / "tumor.nii.gz").exists()
    message = captured.err.strip().splitlines()[-1]
    assert "T2W" in message and "error" in message and "Traceback" not in captured.err


def _nibabel_test_image(name: str) -> sitk.Image:
    """A real brain MRI that nibabel ships as test data (a pinned dependency, so always present)."""
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / name
    if not path.is_file():
        pytest.skip(f"nibabel {nibabel.__version__} no longer ships {name}")
    return sitk.ReadImage(str(path))


@pytest.mark.parametrize("sequences", ["T2WI only", "T2WI + DWI + ADC"])
def test_a_real_brain_mri_gets_the_gate_not_a_contour(sequences, shipped, tmp_path, capsys):
    """A non-pelvic MRI: nibabel's structural brain scan as the T2WI (the T2WI-only network) and its
    echo-planar brain series as T2WI, DWI and ADC (the default network). Neither has a cervix or uterus."""
    if sequences == "T2WI only":
        images = {"T2W": _nibabel_test_image("anatomical.nii")}
    else:
        series = _nibabel_test_image("example4d.nii.gz")  # 4D: two echo-planar volumes of one brain
        images = {"T2W": series[:, :, :, 0], "DWI": series[:, :, :, 0], "ADC": series[:, :, :, 1]}
    images = {role: sitk.Cast(image, sitk.sitkFloat32) for role, image in images.items()}
    case = write_case(tmp_path / "brain", images)
    out = tmp_path / "seg"
    status = main(["segment", str(case), "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 3 and NO_ANATOMY_MESSAGE in printed
    assert not (out / "tumor.nii.gz").exists()
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["tumor_found"] is False and summary["anatomy_gate"]["anatomy_found"] is False
    assert summary["ood"]["unusual"] is True  # and it says the study is unlike the training images
    assert summary["model"]["label"] == _shipped_label("segmentation-t2" if sequences == "T2WI only" else "segmentation")


@pytest.fixture(scope="module")
def axial_cohort(tmp_path_factory) -> Path:
    """Four held-out synthetic patients (seed 9011, never trained or calibrated on) with every T2WI planned axial."""
    cohort = tmp_path_factory.mktemp("axial")
    assert main(["synth", "--cases", "4", "--seed", "9011", "--centers", "5", "--stage-range", "full",
                 "--t2-orientation", "axial", "--out", str(cohort)]) == 0
    return cohort


# The least each network must reach on the axial cohort: tumour Dice per case, organ median Dice. The T2WI-only
# network finds the tumour and the vagina less well without DWI/ADC (2.2.0 here: tumour at least 0.58, vagina
# median 0.67, uterus 0.75, rectum 0.87).
AXIAL_FLOORS = {
    "default": {"tumour": 0.65, "rectum": 0.75, "vagina": 0.7, "uterus": 0.7, "bladder": 0.85},
    "T2WI-only": {"tumour": 0.5, "rectum": 0.75, "vagina": 0.6, "uterus": 0.65, "bladder": 0.85},
}


@pytest.mark.slow
@pytest.mark.parametrize("network", ["default", "T2WI-only"])
def test_a_t2wi_planned_axial_gets_its_tumour_and_organs(network, axial_cohort, tmp_path):
    """Sites plan the T2WI either oblique axial (perpendicular to the cervical canal) or straight axial; the
    generator's centres A-E plan it oblique, F-K axial. The axial cohort through `cervicalai segment`: each
    tumour found, the organs drawn and none flagged as unusual. The networks before 2.5.0 (default) and 2.2.0
    (T2WI-only), trained on oblique T2WIs only, drew these patients' rectum at median Dice 0.39 and 0.44 and
    their vagina at 0.62 and 0.53; the T2WI-only 2.1.1 flagged one of the four as unusual."""
    floors = AXIAL_FLOORS[network]
    organ_dice: dict[str, list[float]] = {"rectum": [], "vagina": [], "uterus": [], "bladder": []}
    for case in sorted(p for p in axial_cohort.iterdir() if p.is_dir()):
        t2 = sitk.ReadImage(str(case / "T2W.nii.gz"))
        assert abs(float(slice_normal(t2)[2])) == pytest.approx(1.0, abs=1e-6)  # axial, whatever the centre
        out = tmp_path / f"seg-{case.name}"
        only = ["--t2-only"] if network == "T2WI-only" else []
        assert main(["segment", str(case), "--out", str(out), *only]) == 0, case.name
        summary = json.loads((out / "segmentation.json").read_text())
        purpose = "segmentation-t2" if network == "T2WI-only" else "segmentation"
        assert summary["model"]["label"] == _shipped_label(purpose) and summary["tumor_found"]
        assert summary["ood"]["available"] and not summary["ood"]["unusual"], (case.name, summary["ood"]["score"])
        tumour_dice = dice(sitk.ReadImage(str(out / "tumor.nii.gz")), sitk.ReadImage(str(case / "labels" / "tumor.nii.gz")))
        assert tumour_dice > floors["tumour"], (case.name, tumour_dice)
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "organs.nii.gz")))
        predicted_table = name_to_values_table(json.loads((out / "organs.json").read_text()), "organs.json")
        true_organs = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels" / "organs.nii.gz")))
        true_table = read_label_table(case, "organs")
        for name, scores in organ_dice.items():
            scores.append(mask_dice(label_mask(predicted, predicted_table[name]), label_mask(true_organs, true_table[name])))
    medians = {name: float(np.median(scores)) for name, scores in organ_dice.items()}
    assert all(medians[name] > floors[name] for name in medians), medians


@pytest.mark.slow
def test_a_sagittal_t2wi_is_segmented_with_a_sentence_naming_its_plane(axial_cohort):
    """A sagittal T2WI given as the T2WI (a study's sagittal series picked by mistake): both networks declare
    the slice planes they were trained on (0-63.5 degrees from axial), so the case is segmented with a
    sentence naming the plane. The OOD score alone does not say it: on these patients it stays under 1
    (0.70-0.93 on the first two)."""
    from CervicalAILib.segmentation import segment_case

    case = sorted(p for p in axial_cohort.iterdir() if p.is_dir())[0]
    acquired = {role: sitk.ReadImage(str(case / f"{role}.nii.gz")) for role in ("T2W", "ADC", "DWI")}
    grid = sagittal_grid(acquired["T2W"], pixel_mm=0.6)  # every series onto the sagittal slab over the T2WI's box
    images = {role: sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
              for role, image in acquired.items()}
    assert orientation_label(images["T2W"]) == "sagittal"
    for network, given in (("default", images), ("T2WI-only", {"T2W": images["T2W"]})):
        summary = segment_case(given).summary
        assert summary["model"]["label"] == _shipped_label("segmentation" if network == "default" else "segmentation-t2")
        plane = [w for w in summary["warnings"] if "slice plane" in w]
        assert len(plane) == 1 and plane[0].startswith("the T2W slice plane is 90 degrees from axial (sagittal)"), network
        assert "use the axial T2WI" in plane[0]
