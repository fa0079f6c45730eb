"""Anatomy gate, label tables by name, organ masks; the gate inside segment_case and the CLI.

The gate is checked on the generator's true organ maps (labels read by name from the case's
legend) and on constructed ones; end to end with a hand-built ONNX network that outputs a
tumour and a cervix channel from intensity bands, so that what it "sees" is known exactly.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from segmentation_testdata import band_network, make_anatomy_bundle, pelvis

from CervicalAILib.bundles.format import write_bundle
from CervicalAILib.cli import main
from CervicalAILib.contracts.label_table import (
    canonical_name,
    label_mask,
    name_to_values_table,
    read_label_table,
)
from CervicalAILib.core.errors import BundleError, InputError
from CervicalAILib.io.case import write_case
from CervicalAILib.segmentation import segment_case, write_segmentation
from CervicalAILib.segmentation.anatomy import (
    NO_ANATOMY_MESSAGE,
    NO_PRIMARY_MESSAGE,
    GateSettings,
    anatomy_gate,
    organ_masks,
    primary_site_ml,
    primary_site_zone,
)
from CervicalAILib.segmentation.postprocess import postprocess_mask

# --------------------------------------------------------------------------- names and tables


def test_canonical_names_fold_spellings():
    assert canonical_name("Tumour") == canonical_name("GTV") == canonical_name("tumor") == "tumor"
    assert canonical_name("Uterine body") == "uterus" and canonical_name("cervix-stroma") == "cervix"
    assert canonical_name("Urinary Bladder") == "bladder" and canonical_name(" Rectum ") == "rectum"


def test_label_tables_in_both_orientations(tmp_path):
    generator_style = {"1": "subcutaneous_fat", "5": "bladder", "7": "cervix", "13": "tumor"}
    nnunet_style = {"background": 0, "Cervix": 7, "Bladder": 5, "Tumour": 13}
    assert name_to_values_table(generator_style, "x") == {"subcutaneous_fat": (1,), "bladder": (5,), "cervix": (7,),
                                                          "tumor": (13,)}
    assert name_to_values_table(nnunet_style, "x") == {"background": (0,), "cervix": (7,), "bladder": (5,), "tumor": (13,)}
    # generator 2: sub-labels with groups; a group covers its members, a label named like its group included
    generator_2 = {"labels": {"2": {"name": "cervix_stroma", "group": "cervix"}, "3": {"name": "cervix_canal", "group": "cervix"},
                              "12": {"name": "bladder_wall", "group": "bladder"}, "13": {"name": "urine", "group": "bladder"}},
                   "groups": {"cervix": [2, 3], "bladder": [12, 13]}}
    table = name_to_values_table(generator_2, "x")
    assert table["cervix"] == (2, 3) and table["bladder"] == (12, 13) and table["urine"] == (13,)
    assert name_to_values_table({"uterus": [5, 6, 7]}, "x") == {"uterus": (5, 6, 7)}
    with pytest.raises(InputError, match="not a list of label values"):
        name_to_values_table({"labels": {"1": "tumor"}, "groups": {"bladder": "12"}}, "x")
    with pytest.raises(InputError, match="twice"):
        name_to_values_table({"1": "tumour", "2": "tumor"}, "x")
    with pytest.raises(InputError, match="neither"):
        name_to_values_table({"bladder": "five"}, "x")


def test_label_table_lookup_order(tmp_path):
    case = tmp_path / "cohort" / "C1"
    (case / "labels").mkdir(parents=True)
    with pytest.raises(InputError, match="no label table"):
        read_label_table(case)
    (tmp_path / "cohort" / "generator.json").write_text(json.dumps(
        {"label_legend": {"labels/organs.nii.gz": {"3": "uterus", "4": "cervix"}}}))
    assert read_label_table(case) == {"uterus": (3,), "cervix": (4,)}
    (case / "generator_truth.json").write_text(json.dumps({"labels": {"organs": {"6": "uterus", "7": "cervix"}}}))
    assert read_label_table(case) == {"uterus": (6,), "cervix": (7,)}
    (case / "labels" / "organs.json").write_text(json.dumps({"uterus": 10, "cervix": 11, "tumour": 12}))
    assert read_label_table(case) == {"uterus": (10,), "cervix": (11,), "tumor": (12,)}


def test_organ_masks_resolve_overlaps_and_keep_the_largest_part():
    bladder = np.zeros((6, 20, 20), np.float32)
    bladder[1:5, 2:10, 2:10] = 0.9
    bladder[2, 17:19, 17:19] = 0.8  # a stray blob: not the bladder
    uterus = np.zeros_like(bladder)
    uterus[1:5, 8:16, 8:16] = 0.7  # overlaps the bladder's corner, less probable there
    masks = organ_masks({"bladder": bladder, "uterus": uterus})
    assert masks["bladder"].sum() == 4 * 8 * 8 and not masks["bladder"][2, 17, 17]
    assert not (masks["bladder"] & masks["uterus"]).any()
    assert masks["uterus"].sum() == 4 * 8 * 8 - 4 * 2 * 2


def test_each_organ_can_have_its_own_threshold():
    """With one threshold per structure, a voxel goes to the most probable structure among those at or
    above their own threshold: an under-confident uterus (0.35) cut at 0.3 wins over a bladder at 0.45
    that needs 0.5, and where both qualify the more probable one still wins."""
    bladder = np.full((2, 4, 4), 0.45, np.float32)
    uterus = np.full_like(bladder, 0.35)
    bladder[1] = 0.8  # both qualify here: the bladder is more probable
    uniform = organ_masks({"bladder": bladder, "uterus": uterus}, 0.5)
    assert uniform["bladder"].sum() == 16 and not uniform["uterus"].any()
    each = organ_masks({"bladder": bladder, "uterus": uterus}, {"bladder": 0.5, "uterus": 0.3})
    assert each["uterus"][0].all() and not each["uterus"][1].any() and each["bladder"][1].all()
    assert not each["bladder"][0].any()
    # one number for all is the same as that number named for each
    assert all((organ_masks({"bladder": bladder, "uterus": uterus}, 0.4)[n]
                == organ_masks({"bladder": bladder, "uterus": uterus}, {"bladder": 0.4, "uterus": 0.4})[n]).all()
               for n in ("bladder", "uterus"))


def test_an_organ_below_the_floor_is_not_found():
    """A speck is not an organ (ProstateX-0000's "rectum" through mpmri 2.4.0 was 0.04 mL in front of
    the bladder): fewer voxels than `min_voxels` in the kept part leaves the structure empty."""
    rectum = np.zeros((6, 20, 20), np.float32)
    rectum[2, 3:5, 3:5] = 0.9  # 4 voxels, the largest part
    rectum[4, 15, 15] = 0.9  # 1 voxel
    bladder = np.zeros_like(rectum)
    bladder[1:5, 8:14, 8:14] = 0.9  # 144 voxels
    masks = organ_masks({"rectum": rectum, "bladder": bladder}, min_voxels=5)
    assert not masks["rectum"].any() and masks["bladder"].sum() == 144
    # the floor is tested on the part kept, not on all the organ's voxels (4 + 1 = 5 would pass)
    assert organ_masks({"rectum": rectum}, min_voxels=4)["rectum"].sum() == 4
    assert organ_masks({"rectum": rectum}, min_voxels=0)["rectum"].sum() == 4
    assert not organ_masks({"bladder": bladder}, min_voxels=145)["bladder"].any()


# --------------------------------------------------------------------------- the gate on generator truth


@pytest.fixture(scope="module")
def generator_case():
    from CervicalAILib.research.synth import SynthParams, generate_case

    case = generate_case(0, 5, SynthParams(matrix_scale=0.4))
    table = name_to_values_table(case.label_table, "labels/organs.json")
    organs = sitk.GetArrayFromImage(case.labels["organs"])
    tumour = sitk.GetArrayFromImage(case.labels["tumor"]) > 0
    return organs, table, tumour, case.labels["organs"].GetSpacing()[::-1]


def test_gate_keeps_the_true_tumour_and_removes_a_distant_candidate(generator_case):
    organs, table, tumour, spacing = generator_case
    masks = {name: label_mask(organs, table[name]) for name in ("cervix", "uterus", "bladder")}
    drop, report = anatomy_gate(tumour, masks, spacing)
    assert report["anatomy_found"] and report["removed_components"] == 0 and not drop.any()
    assert report["anatomy_ml"] > 5.0
    # a tumour-like blob in bone, far from the cervix and uterus (a femoral head, as seen on real studies)
    uterus_cervix = masks["cervix"] | masks["uterus"]
    distance = ndimage.distance_transform_edt(~uterus_cervix, sampling=spacing)
    far_bone = np.argwhere(label_mask(organs, table["bone"]) & (distance > 40))
    centre = far_bone[len(far_bone) // 2]
    blob = np.zeros_like(tumour)
    blob[tuple(slice(max(c - 1, 0), c + 2) for c in centre)] = True
    drop, report = anatomy_gate(tumour | blob, masks, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000
    assert report["removed_components"] == 1 and np.array_equal(drop, blob & ~tumour)
    assert report["removed_ml"] == pytest.approx(blob.sum() * voxel_ml, abs=1e-3)
    # the same study without cervix and uterus (a male pelvis): nothing is kept
    male = {"bladder": masks["bladder"], "cervix": np.zeros_like(tumour), "uterus": np.zeros_like(tumour)}
    drop, report = anatomy_gate(tumour | blob, male, spacing)
    assert not report["anatomy_found"] and report["message"] == NO_ANATOMY_MESSAGE
    assert np.array_equal(drop, tumour | blob)


def test_gate_is_per_component_and_measures_in_millimetres():
    spacing = (4.0, 1.0, 1.0)  # anisotropic: 2 slices away = 8 mm
    cervix = np.zeros((10, 40, 40), bool)
    cervix[4:6, 15:25, 15:25] = True
    candidate = np.zeros_like(cervix)
    candidate[4:6, 25:39, 18:22] = True  # grows out of the cervix for 14 mm: kept whole
    candidate[7, 18:22, 18:22] = True  # two slices above (8 mm): next to it, kept
    candidate[4:6, 2:6, 2:6] = True  # 13 mm in-plane diagonal gap from the cervix corner: removed
    settings = GateSettings(min_ml=0.5, near_mm=10.0)
    drop, report = anatomy_gate(candidate, {"cervix": cervix}, spacing, settings)
    assert report["removed_components"] == 1 and drop.sum() == 2 * 4 * 4
    assert drop[4:6, 2:6, 2:6].all()
    tight = GateSettings(min_ml=0.5, near_mm=5.0)
    assert anatomy_gate(candidate, {"cervix": cervix}, spacing, tight)[1]["removed_components"] == 2


def test_a_uterus_without_a_cervix_is_no_primary_site_when_the_bundle_asks_for_one():
    """ProstateX-0000 through mpmri 2.2.0: 9.7 mL of "uterus" but 0.03 mL of cervix, so 9.8 mL passes
    the 5 mL test alone; with min_primary_ml the study gets the gate sentence and no tumour."""
    spacing = (4.0, 1.0, 1.0)  # 4 uL voxels
    uterus = np.zeros((10, 40, 40), bool)
    uterus[2:8, 5:35, 5:35] = True  # 6 * 30 * 30 * 4 uL = 21.6 mL
    cervix = np.zeros_like(uterus)
    cervix[8, 18:21, 18:21] = True  # 9 voxels = 0.036 mL
    candidate = np.zeros_like(uterus)
    candidate[3:5, 10:14, 10:14] = True
    organs = {"cervix": cervix, "uterus": uterus}
    passes = anatomy_gate(candidate, organs, spacing, GateSettings(min_ml=5.0))[1]
    assert passes["anatomy_found"] is True and "reason" not in passes  # older bundles: off
    drop, report = anatomy_gate(candidate, organs, spacing, GateSettings(min_ml=5.0, min_primary_ml=1.0))
    # a uterus was found: the sentence names what was not (the cervix), not "no cervix or uterus"
    assert report["anatomy_found"] is False and report["message"] == NO_PRIMARY_MESSAGE
    assert report["status"] == "no cervix recognised" and NO_PRIMARY_MESSAGE == "no cervix recognised in this study"
    assert report["reason"] == "cervix + attached tumour 0.04 mL, below the 1 mL the primary site needs"
    assert report["primary_site_ml"] == pytest.approx(0.036)  # the candidate lies 12 mm from this cervix: not attached
    assert np.array_equal(drop, candidate) and report["removed_ml"] == pytest.approx(32 * 0.004)
    cervix[6:8, 15:25, 15:25] = True  # 200 voxels = 0.8 mL more: 0.836 mL, still below 1 mL
    assert anatomy_gate(candidate, organs, spacing, GateSettings(min_primary_ml=1.0))[1]["anatomy_found"] is False
    cervix[5, 15:25, 15:25] = True  # + 0.4 mL: 1.236 mL
    assert anatomy_gate(candidate, organs, spacing, GateSettings(min_primary_ml=1.0))[1]["anatomy_found"] is True
    small = anatomy_gate(candidate, {"cervix": cervix}, spacing, GateSettings(min_ml=5.0, min_primary_ml=1.0))[1]
    assert small["reason"] == "cervix + uterus 1.2 mL, below 5 mL"  # the total is tested first
    assert small["message"] == NO_ANATOMY_MESSAGE and small["status"] == "no cervix or uterus recognised"
    assert GateSettings.from_manifest({"min_primary_ml": 1.5}).to_dict()["min_primary_ml"] == 1.5


def test_the_primary_site_counts_the_tumour_attached_to_the_cervix_not_one_elsewhere():
    """A large tumour replaces the stroma it grows in: calibration case SYN22-B-0033 through the T2WI-only
    network left 1.1 mL of cervix beside a 13.8 mL tumour. Cervix + attached tumour is the primary site;
    a candidate in the uterine body 24 mm away is not, and without a cervix nothing is attached."""
    spacing = (4.0, 1.0, 1.0)  # 4 uL voxels
    shape = (12, 40, 40)
    uterus = np.zeros(shape, bool)
    uterus[0:4, 5:35, 5:35] = True  # 14.4 mL
    cervix = np.zeros(shape, bool)
    cervix[8:10, 10:15, 10:15] = True  # 50 voxels: 0.2 mL
    tumour = np.zeros(shape, bool)
    tumour[7:11, 15:30, 10:30] = True  # 1200 voxels: 4.8 mL, touching the cervix
    far = np.zeros(shape, bool)
    far[1:3, 20:30, 20:30] = True  # 200 voxels in the uterine body, 24 mm above the cervix
    organs = {"cervix": cervix, "uterus": uterus}
    settings = GateSettings(min_ml=5.0, min_primary_ml=2.0)
    assert primary_site_ml(tumour | far, organs, spacing, settings) == pytest.approx(0.2 + 4.8)
    drop, report = anatomy_gate(tumour | far, organs, spacing, settings)
    assert report["anatomy_found"] is True and report["primary_site_ml"] == pytest.approx(5.0)
    assert not drop.any()  # both lie in or next to the cervix/uterus; the main-lesion choice comes later
    # the far candidate alone is not a primary site: the study gets the gate sentence
    drop, report = anatomy_gate(far, organs, spacing, settings)
    assert report["anatomy_found"] is False and report["message"] == NO_PRIMARY_MESSAGE
    assert report["primary_site_ml"] == pytest.approx(0.2)
    assert report["reason"] == "cervix + attached tumour 0.20 mL, below the 2 mL the primary site needs"
    # no cervix at all: a tumour next to the uterus is not attached to anything
    assert primary_site_ml(tumour, {"cervix": np.zeros(shape, bool), "uterus": uterus}, spacing, settings) == 0.0
    # a cervix big enough on its own needs no distance map and reports no primary_site_ml
    cervix[4:8, 10:20, 10:20] = True  # + 1.6 mL
    cervix[8:10, 10:20, 10:20] = True
    assert "primary_site_ml" not in anatomy_gate(far, organs, spacing, settings)[1]
    # just under a limit reads as under it (held-out SYN9002-B-0013: 0.999 mL printed as "1.00 mL, below the 1 mL")
    almost = np.ones((10, 10, 10), bool)
    almost[0, 0, 0] = False  # 999 voxels of 1 uL
    none = np.zeros_like(almost)
    unit = (1.0, 1.0, 1.0)
    report = anatomy_gate(none, {"cervix": almost}, unit, GateSettings(min_ml=0.5, min_primary_ml=1.0))[1]
    assert report["reason"] == "cervix + attached tumour 0.999 mL, below the 1 mL the primary site needs"
    assert anatomy_gate(none, {"cervix": almost}, unit, GateSettings(min_ml=1.0))[1]["reason"] == "cervix + uterus 0.999 mL, below 1 mL"
    assert anatomy_gate(none, {"cervix": almost}, unit, GateSettings(min_ml=5.0))[1]["reason"] == "cervix + uterus 1.0 mL, below 5 mL"


def test_the_main_lesion_is_the_one_at_the_cervix_not_the_largest():
    """A small tumour in the cervix beats a larger false candidate in the uterine body that touches the cervix
    and a larger, brighter one in the sigmoid colon (held-out cases SYN9002-A-0058, SYN9003-B-0045)."""
    spacing = (4.0, 1.5, 1.5)
    shape = (16, 60, 60)
    cervix = np.zeros(shape, bool)
    cervix[2:8, 20:32, 20:32] = True  # stroma ring around a tumour in its middle
    cervix[3:7, 23:29, 23:29] = False
    probability = np.zeros(shape, np.float32)
    probability[3:7, 23:29, 23:29] = 0.95  # the tumour: 144 voxels, inside the cervix
    probability[9:15, 18:34, 18:34] = 0.9  # uterine body: 1536 voxels, one slice (4 mm) above the cervix
    probability[2:10, 45:58, 45:58] = 0.99  # sigmoid: 1352 voxels, far from it
    zone = primary_site_zone({"cervix": cervix, "uterus": np.zeros(shape, bool)}, spacing)
    assert zone[8, 25, 25] and not zone[10, 25, 25]  # 4 mm above the cervix is in the zone, 8 mm is not
    mask, report = postprocess_mask(probability, spacing, {"threshold": 0.5}, primary_zone=zone)
    assert report["main_lesion"] == "most probability at the primary site" and report["components_found"] == 3
    assert mask.sum() == 4 * 6 * 6 and mask[5, 25, 25]
    # without the zone: the candidate with the most probability mass (the uterine body) wins, as before
    plain, report = postprocess_mask(probability, spacing, {"threshold": 0.5})
    assert plain[12, 25, 25] and not plain[5, 25, 25] and report["main_lesion"] == "most probability"
    # nothing at the cervix: the most mass anywhere, and the report says so
    far = probability.copy()
    far[3:7, 23:29, 23:29] = 0
    far[9:15, 18:34, 18:34] = 0
    _, report = postprocess_mask(far, spacing, {"threshold": 0.5}, primary_zone=zone)
    assert report["main_lesion"] == "most probability (none at the primary site)"
    # no cervix found, or a gate naming another site: no zone
    assert primary_site_zone({"uterus": cervix}, spacing) is None
    assert primary_site_zone({"cervix": np.zeros(shape, bool)}, spacing) is None
    settings = GateSettings.from_manifest({"primary": "Uterus", "primary_near_mm": 2})
    assert settings.primary == "uterus" and settings.to_dict()["primary_near_mm"] == 2.0
    assert primary_site_zone({"uterus": cervix}, spacing, settings).sum() < zone.sum()


# --------------------------------------------------------------------------- end to end: a network with a cervix output


@pytest.fixture
def anatomy_bundle(tmp_path):
    return make_anatomy_bundle(tmp_path / "bands")


def test_segment_case_writes_organs_and_keeps_the_tumour_in_the_cervix(anatomy_bundle, tmp_path):
    image, tumour, _ = pelvis()
    result = segment_case({"T2W": image}, bundle=anatomy_bundle.path)
    summary = result.summary
    assert result.found and result.anatomy_recognised
    mask = sitk.GetArrayFromImage(result.mask) > 0
    dice = 2 * (mask & tumour).sum() / (mask.sum() + tumour.sum())
    assert dice > 0.85
    assert summary["anatomy_gate"]["applied"] and summary["anatomy_gate"]["removed_components"] == 0
    assert result.organ_labels == {"cervix": 1}
    cervix_ml = [o for o in summary["organs"] if o["name"] == "cervix"][0]["volume_ml"]
    true_shell_ml = 4 / 3 * np.pi * (14**3 - 6**3) / 1000  # 10.6 mL
    assert cervix_ml == pytest.approx(true_shell_ml, rel=0.2)
    assert summary["ood"]["available"] is False
    out = write_segmentation(result, tmp_path / "out")
    assert json.loads((out / "organs.json").read_text()) == {"cervix": 1}
    organs = sitk.ReadImage(str(out / "organs.nii.gz"))
    assert organs.GetSize() == image.GetSize() and organs.GetOrigin() == image.GetOrigin()
    assert (out / "tumor.nii.gz").is_file()


def test_the_bundles_organ_threshold_decides_the_organ_voxels(anatomy_bundle, tmp_path):
    """`organ_threshold` in bundle.json is what the organ masks are cut at (0.5 when absent), and only a
    probability strictly between 0 and 1 is accepted."""
    image, _, _ = pelvis()
    manifest = {k: v for k, v in anatomy_bundle.manifest.items() if k not in ("schema", "files")}
    files = {"model.onnx": band_network(), "MODEL_CARD.md": "# bands\n"}

    def cervix_ml(threshold):
        bundle = write_bundle(tmp_path / f"t{len(list(tmp_path.iterdir()))}", dict(manifest, organ_threshold=threshold), files)
        organs = segment_case({"T2W": image}, bundle=bundle.path).summary["organs"]
        return next(organ["volume_ml"] for organ in organs if organ["name"] == "cervix")

    default = next(o["volume_ml"] for o in segment_case({"T2W": image}, bundle=anatomy_bundle.path).summary["organs"])
    assert "organ_threshold" not in manifest and cervix_ml(0.5) == default
    assert 0.0 < cervix_ml(0.97) < default - 0.2  # the cervix shell's soft rims drop out
    assert cervix_ml(0.1) > default
    for wrong in (0.0, 1.0, 1.5, "half", True):
        with pytest.raises(BundleError, match=f"organ_threshold {wrong!r} is not a probability"):
            segment_case({"T2W": image}, bundle=write_bundle(tmp_path / f"w{wrong}", dict(manifest, organ_threshold=wrong), files).path)
    # one threshold per structure, named (in any spelling the label tables accept)
    assert cervix_ml({"Cervix": 0.97}) == cervix_ml(0.97)
    for wrong, says in (({"cervix": 0.5, "femoral head": 0.5}, "names femoral_head, which the network does not output"),
                        ({}, "gives no threshold for cervix"),
                        ({"cervix": 2}, "organ_threshold of cervix 2 is not a probability")):
        with pytest.raises(BundleError, match=says):
            segment_case({"T2W": image}, bundle=write_bundle(tmp_path / f"m{len(wrong)}{says[:4]}", dict(manifest, organ_threshold=wrong), files).path)


def test_the_bundle_names_the_passes_the_organs_come_from(anatomy_bundle, tmp_path):
    """`inference.organ_passes`: "original" (the default, bundles before 2.5.1) takes the organs from the
    unmirrored pass, "mean" from the mean of it and the left-right mirrored pass (as the tumour). A network
    that reads the cervix 2 working voxels (3 mm) to one side draws it 3 mm off in its own pass and 3 mm
    off the other way in the mirrored one: the mean puts it back where it is."""
    image, _, _ = pelvis()
    manifest = {k: v for k, v in anatomy_bundle.manifest.items() if k not in ("schema", "files")}
    # one patch over the whole phantom, so the mirrored pass covers all of the cervix, not a crop around the tumour
    inference = dict(manifest["inference"], patch_size_xyz=[48, 48, 12])
    files = {"model.onnx": band_network(lean_voxels=2), "MODEL_CARD.md": "# leaning bands\n"}
    true_x_mm = image.TransformContinuousIndexToPhysicalPoint((14.0, 22.0, 6.0))[0]  # the phantom's cervix centre

    def cervix_centre_x_mm(passes):
        settings = inference if passes is None else dict(inference, organ_passes=passes)
        bundle = write_bundle(tmp_path / str(passes), dict(manifest, inference=settings), files)
        result = segment_case({"T2W": image}, bundle=bundle.path)
        cervix = sitk.GetArrayFromImage(result.organs) == result.organ_labels["cervix"]
        x_index = float(np.argwhere(cervix)[:, 2].mean())
        return result.organs.TransformContinuousIndexToPhysicalPoint((x_index, 22.0, 6.0))[0]

    original, mean = cervix_centre_x_mm("original"), cervix_centre_x_mm("mean")
    assert cervix_centre_x_mm(None) == original
    assert original < true_x_mm - 2.0  # 3 mm off, towards the lower x
    assert abs(mean - true_x_mm) < 0.6
    with pytest.raises(BundleError, match="inference.organ_passes 'both' is not one of original, mean"):
        segment_case({"T2W": image}, bundle=write_bundle(
            tmp_path / "wrong", dict(manifest, inference=dict(inference, organ_passes="both")), files).path)


def test_the_bundles_organ_floor_decides_what_is_found(anatomy_bundle, tmp_path):
    """`organ_min_ml` (default 0.5 mL): an organ under it is reported not found and is not in organs.nii.gz;
    here the network's cervix (about 10.6 mL) under a 20 mL floor leaves no cervix, so the gate closes."""
    image, _, _ = pelvis()
    manifest = {k: v for k, v in anatomy_bundle.manifest.items() if k not in ("schema", "files")}
    files = {"model.onnx": band_network(), "MODEL_CARD.md": "# bands\n"}
    assert "organ_min_ml" not in manifest
    found = segment_case({"T2W": image}, bundle=anatomy_bundle.path)
    cervix = next(o for o in found.summary["organs"] if o["name"] == "cervix")
    assert cervix["found"] and cervix["volume_ml"] > 5.0 and found.found
    floor = segment_case({"T2W": image}, bundle=write_bundle(tmp_path / "floor", dict(manifest, organ_min_ml=20), files).path)
    assert floor.summary["organs"] == [{"name": "cervix", "label": 1, "found": False, "volume_ml": 0.0}]
    assert not sitk.GetArrayFromImage(floor.organs).any()
    assert not floor.anatomy_recognised and floor.summary["message"] == NO_ANATOMY_MESSAGE and floor.mask is None
    for wrong in (-1, 1000, "x"):
        with pytest.raises(BundleError, match=f"organ_min_ml {wrong!r} is not a volume"):
            segment_case({"T2W": image}, bundle=write_bundle(tmp_path / f"w{wrong}", dict(manifest, organ_min_ml=wrong), files).path)


def test_a_hand_edited_gate_setting_is_a_one_line_bundle_error(anatomy_bundle, tmp_path):
    """The gate's volumes and distances are checked like organ_threshold: a word, a negative number, a number
    written as text or a list where the settings belong names the bundle and the value instead of failing inside float()."""
    image, _, _ = pelvis()
    manifest = {k: v for k, v in anatomy_bundle.manifest.items() if k not in ("schema", "files")}
    files = {"model.onnx": band_network(), "MODEL_CARD.md": "# bands\n"}
    for key, wrong, unit in (("min_ml", "five", "mL"), ("min_primary_ml", -1.0, "mL"), ("near_mm", "10", "mm"),
                             ("primary_near_mm", True, "mm")):
        bundle = write_bundle(tmp_path / key, dict(manifest, anatomy_gate=dict(manifest["anatomy_gate"], **{key: wrong})), files)
        with pytest.raises(BundleError, match=rf"^{re.escape(str(bundle.path))}: anatomy_gate\.{key} {wrong!r} is not a number of {unit} \(0 or more\)$"):
            segment_case({"T2W": image}, bundle=bundle.path)
    listed = write_bundle(tmp_path / "list", dict(manifest, anatomy_gate=[5.0]), files)
    with pytest.raises(BundleError, match=r"anatomy_gate \[5\.0\] is not an object of gate settings"):
        segment_case({"T2W": image}, bundle=listed.path)
    # 0 is allowed (it switches min_primary_ml off) and the shipped values load
    zero = write_bundle(tmp_path / "zero", dict(manifest, anatomy_gate=dict(manifest["anatomy_gate"], min_primary_ml=0)), files)
    assert segment_case({"T2W": image}, bundle=zero.path).anatomy_recognised


def test_a_uterus_without_enough_cervix_gets_its_own_sentence_end_to_end(anatomy_bundle, tmp_path, capsys):
    """The gate's second test through segment_case and the command: enough cervix + uterus, too little cervix
    (this network's 10.6 mL cervix against a bundle asking for 20 mL): "no cervix recognised in this study",
    exit status 3 and no tumour file, like the first test."""
    image, _, _ = pelvis()
    manifest = {k: v for k, v in anatomy_bundle.manifest.items() if k not in ("schema", "files")}
    gate = dict(manifest["anatomy_gate"], min_ml=5.0, min_primary_ml=20.0)
    bundle = write_bundle(tmp_path / "primary", dict(manifest, anatomy_gate=gate),
                          {"model.onnx": band_network(), "MODEL_CARD.md": "# bands\n"})
    result = segment_case({"T2W": image}, bundle=bundle.path)
    assert not result.anatomy_recognised and result.mask is None
    assert result.summary["status"] == "no cervix recognised" and result.summary["message"] == NO_PRIMARY_MESSAGE
    assert result.summary["anatomy_gate"]["reason"].endswith("below the 20 mL the primary site needs")
    case = write_case(tmp_path / "case", {"T2W": image})
    out = tmp_path / "seg"
    assert main(["segment", str(case), "--out", str(out), "--model", str(bundle.path)]) == 3
    printed = capsys.readouterr().out
    assert NO_PRIMARY_MESSAGE in printed and NO_ANATOMY_MESSAGE not in printed
    assert not (out / "tumor.nii.gz").exists()


def test_a_bright_blob_away_from_the_cervix_is_removed_and_counted(anatomy_bundle):
    image, tumour, blob = pelvis(far_blob=True)
    result = segment_case({"T2W": image}, bundle=anatomy_bundle.path)
    mask = sitk.GetArrayFromImage(result.mask) > 0
    gate = result.summary["anatomy_gate"]
    assert gate["removed_components"] == 1 and gate["removed_ml"] > 0.1
    assert not (mask & blob).any() and (mask & tumour).sum() > 0.8 * tumour.sum()
    assert any("anatomy gate: removed 1 tumour candidate" in w for w in result.summary["warnings"])


def test_no_cervix_means_no_contour_and_exit_status_3(anatomy_bundle, tmp_path, capsys):
    image, _, blob = pelvis(cervix=False)  # a bright lesion-like blob but no cervix: a male pelvis
    result = segment_case({"T2W": image}, bundle=anatomy_bundle.path)
    assert not result.anatomy_recognised and not result.found
    assert result.mask is None and result.probability is None
    assert result.summary["status"] == "no cervix or uterus recognised"
    assert result.summary["message"] == NO_ANATOMY_MESSAGE and result.summary["confidence"] is None
    # the command: the sentence, exit status 3, no tumour file that anything could pick up
    case = write_case(tmp_path / "male", {"T2W": image})
    out = tmp_path / "seg"
    assert main(["segment", str(case), "--out", str(out), "--model", str(anatomy_bundle.path)]) == 3
    printed = capsys.readouterr().out
    assert NO_ANATOMY_MESSAGE in printed
    assert not (out / "tumor.nii.gz").exists() and not (out / "tumor_probability.nii.gz").exists()
    summary = json.loads((out / "segmentation.json").read_text())
    assert summary["anatomy_gate"]["anatomy_found"] is False and "mask" not in summary["files"]
    assert main(["segment", str(case), "--out", str(tmp_path / "seg2"), "--model", str(anatomy_bundle.path),
                 "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "no cervix or uterus recognised"


def test_a_blank_series_gets_the_gate_not_a_contour(anatomy_bundle):
    blank = sitk.Image(40, 40, 10, sitk.sitkFloat32)
    blank.SetSpacing((1.2, 1.2, 3.0))
    result = segment_case({"T2W": blank}, bundle=anatomy_bundle.path)
    assert not result.anatomy_recognised and result.mask is None


def test_models_without_anatomy_outputs_say_the_gate_was_not_applied(tmp_path):
    from segmentation_testdata import make_bundle, phantom

    bundle = make_bundle(tmp_path / "tumour-only")
    image, _ = phantom()
    result = segment_case({"T2W": image}, bundle=bundle.path)
    assert result.summary["anatomy_gate"] == {
        "applied": False, "reason": "the model tiny-seg@0.0.1 has no cervix or uterus output to check the tumour against"}
    assert result.summary["organs"] == [] and result.organs is None


def test_bundle_outputs_are_checked_against_the_network(tmp_path):
    from CervicalAILib.segmentation.inference import SegmentationModel

    good = make_anatomy_bundle(tmp_path / "good")
    manifest = {k: v for k, v in good.manifest.items() if k not in ("schema", "files")}
    files = {"model.onnx": band_network(), "MODEL_CARD.md": "# bands\n"}
    too_many = dict(manifest, outputs=[*manifest["outputs"], {"name": "bladder", "channel": 2}])
    with pytest.raises(BundleError, match="names output channels up to 2, the network gives 2"):
        SegmentationModel(write_bundle(tmp_path / "three", too_many, files))
    with pytest.raises(BundleError, match="needs an output named 'tumor'"):
        SegmentationModel(write_bundle(tmp_path / "none", dict(manifest, outputs=[{"name": "cervix", "channel": 1}]),
                                       files))
    twice = dict(manifest, outputs=[{"name": "tumor", "channel": 0}, {"name": "Tumour", "channel": 1}])
    with pytest.raises(BundleError, match="distinct names"):
        SegmentationModel(write_bundle(tmp_path / "twice", twice, files))
