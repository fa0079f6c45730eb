"""contracts.feature_names: the one builder and parser of feature names."""

import pytest

from CervicalAILib.contracts.case_folder import ROLES
from CervicalAILib.contracts.feature_names import (
    RADIOMICS_FAMILY,
    FeatureName,
    deep_family,
    deep_name,
    deep_name_pattern,
    encoder_of_family,
    family_of,
    is_deep,
    is_feature_name,
    parse_feature_name,
    radiomic_name,
    role_of,
    split_radiomic_name,
)
from CervicalAILib.core.errors import InputError


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("index", [0, 7, 123, 9999, 12345])
def test_deep_names_round_trip(role, index):
    name = deep_name(role, "resnet2d", index)
    assert name == f"{role}_dl-resnet2d_F{index:04d}"
    parsed = parse_feature_name(name)
    assert parsed == FeatureName(role, "dl-resnet2d", f"F{index:04d}", index)
    assert str(parsed) == name and parsed.is_deep
    assert role_of(name) == role and family_of(name) == "dl-resnet2d" and is_deep(name)


@pytest.mark.parametrize("pyradiomics_name", ["original_shape_Maximum3DDiameter",
                                              "wavelet-HLH_gldm_SmallDependenceEmphasis",
                                              "log-sigma-2-0-mm-3D_glcm_Idmn", "lbp-3D-m1_firstorder_Entropy"])
@pytest.mark.parametrize("role", ROLES)
def test_radiomic_names_round_trip(role, pyradiomics_name):
    name = radiomic_name(role, pyradiomics_name)
    assert name == f"{role}_{pyradiomics_name}"
    parsed = parse_feature_name(name)
    assert (parsed.role, parsed.family, parsed.rest, parsed.index) == (role, RADIOMICS_FAMILY, pyradiomics_name, None)
    assert str(parsed) == name and not parsed.is_deep and family_of(name) == "radiomics"
    split = split_radiomic_name(name)
    assert str(split) == name and split.pyradiomics_name == pyradiomics_name
    assert split == (role, *pyradiomics_name.split("_"))


def test_tables_from_elsewhere_parse_liberally():
    """Cohort tables a site brings: any radiomics name after the role, deep families with upper case and dots,
    unpadded indices (what the fit always accepted)."""
    assert parse_feature_name("T2W_shape_VoxelVolume") == FeatureName("T2W", "radiomics", "shape_VoxelVolume")
    assert parse_feature_name("T2W_f1").rest == "f1"
    assert parse_feature_name("CET1_dl-Res.Net-2_F12") == FeatureName("CET1", "dl-Res.Net-2", "F12", 12)
    assert deep_family("resnet2d") == "dl-resnet2d" and encoder_of_family("dl-resnet2d") == "resnet2d"
    assert deep_name_pattern("tiny2d") == "{ROLE}_dl-tiny2d_F{index:04d}"


@pytest.mark.parametrize("column", ["case_id", "center", "age", "c_lnm", "latent_adc", "lnm", "t2w_original_x",
                                    "T2Woriginal_firstorder_Mean", "FLAIR_original_firstorder_Mean", ""])
def test_other_columns_are_not_features(column):
    assert not is_feature_name(column)


@pytest.mark.parametrize("name", [
    "T2W_dl-resnet2d",            # no index
    "T2W_dl-resnet2d_F",          # empty index
    "T2W_dl-resnet2d_0001",       # index without F
    "T2W_dl-resnet2d_F00a1",      # not digits
    "T2W_dl-resnet2d_F٣",         # a non-ASCII digit
    "T2W_dl-_F0001",              # no encoder
    "T2W_dl-res_net_F0001",       # underscore inside the family
    "T2W_dl-resnet2d_F0001_x",    # trailing part
])
def test_malformed_deep_names_are_refused_by_every_parser(name):
    for parse in (parse_feature_name, role_of, family_of, is_deep, is_feature_name):
        with pytest.raises(InputError, match="not a deep feature name"):
            parse(name)


@pytest.mark.parametrize("name", ["T2W_", "FLAIR_original_firstorder_Mean", "original_firstorder_Mean", "T2W", "",
                                  "t2w_original_firstorder_Mean"])
def test_not_feature_names_are_refused(name):
    for parse in (parse_feature_name, role_of, family_of, is_deep):
        with pytest.raises(InputError, match="not a feature name"):
            parse(name)
    with pytest.raises(InputError):
        parse_feature_name(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "message"), [
    ("original_firstorder_Mean", "not of the form"),
    ("T2W_original_Mean", "not of the form"),
    ("T2W_original__Mean", "not of the form"),
    ("T2W_original_firstorder_Mean_x", "not of the form"),
    ("FLAIR_original_firstorder_Mean", "unknown sequence prefix 'FLAIR'"),
    ("T2W_dl-x_firstorder_Mean", "deep feature family"),
])
def test_split_radiomic_name_refuses(name, message):
    with pytest.raises(InputError, match=message):
        split_radiomic_name(name)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: deep_name("FLAIR", "resnet2d", 1), "unknown sequence role"),
    (lambda: deep_name("T2W", "ResNet", 1), "lower-case"),
    (lambda: deep_name("T2W", "res_net", 1), "lower-case"),
    (lambda: deep_name("T2W", "resnet\n", 1), "lower-case"),
    (lambda: deep_name("T2W", "resnet2d", -1), "index"),
    (lambda: deep_name("T2W", "resnet2d", True), "index"),
    (lambda: radiomic_name("T2W", ""), "not a pyradiomics feature name"),
    (lambda: radiomic_name("T2W", "dl-x_F0001"), "not a pyradiomics feature name"),
    (lambda: radiomic_name("t2w", "original_firstorder_Mean"), "unknown sequence role"),
    (lambda: encoder_of_family("radiomics"), "not a deep feature family"),
    (lambda: encoder_of_family("dl-"), "not a deep feature family"),
])
def test_builders_refuse_what_would_not_parse_back(build, message):
    with pytest.raises(InputError, match=message):
        build()
