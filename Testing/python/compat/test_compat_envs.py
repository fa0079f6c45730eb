"""Compatibility tier: the extension on each supported 3D Slicer version's Python (5.10, 5.12, 5.13).

Slicer itself cannot be installed here, so each version is stood for by an environment with the
Python version it ships (3.12), exactly the packages it bundles (pins read from its source), the
slicer-core wheel closest to it for real MRML, SlicerRadiomics' packages, and what the hub's own
install plan installs; everything else is blocked on import (Testing/compat/build_env.py). In it:

- the pins are installed as Slicer ships them, and nothing installed later changed them;
- before anything is installed (Slicer and MRML only), every Lib module imports and the hub works
  out what to install: only pip-only packages, never one of Slicer's own;
- after the hub's installation, the plan is complete;
- LBP3D (pyradiomics' is broken on scipy 1.17) gives the main environment's images;
- the engine end to end as the modules run it gives the main environment's readout;
- the MRML logic tests pass on that version's slicer-core wheel.

Builds are cached in .compat-envs/ (keyed by a hash of the pin files); CERVICALAI_COMPAT=skip
skips the tier.
"""

from __future__ import annotations

import json
import math
import sys

import compat_run  # noqa: E402  (Testing/compat, on sys.path via conftest)
import numpy as np
import pytest

from conftest import REPO, slicer_versions

VERSIONS = slicer_versions.SUPPORTED
CHAIN = REPO / "Testing" / "compat" / "engine_chain.py"
HUB_INSTALLS = ["onnxruntime>=1.18", "PyYAML>=6.0", "matplotlib>=3.8", "nibabel>=5.0", "trimesh>=4.0"]
# What the Lib packages may not import before the hub installed anything (Slicer and MRML only).
PIP_ONLY_MODULES = ("onnxruntime", "yaml", "matplotlib", "nibabel", "trimesh", "radiomics", "pywt", "pykwalify")
# The main environment's readout, within (the figures of the closing note of issue 11):
PROBABILITY_TOLERANCE = 1e-6  # LNM and stage-group probabilities, absolute
SCORE_TOLERANCE = 1e-5  # Rad_score, DL_score, nomogram total points, relative
FEATURE_TOLERANCE = 1e-6  # each radiomics feature value, relative (deep features: 1e-5 absolute)
# The MRML logic tests (and the background runner's, which runs in Slicer's Python too).
MRML_TEST_FILES = ("slicer/test_hub.py", "slicer/test_segment.py", "slicer/test_predict.py", "core/test_background.py",
                   "io/test_mrml.py")  # fmt: skip


def check(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def last_json(result) -> dict:
    return json.loads(check(result).strip().splitlines()[-1])


@pytest.fixture(scope="module", params=VERSIONS)
def slicer_env(request):
    return request.param, compat_run.environment(request.param)


def test_the_environment_holds_exactly_what_that_slicer_ships(slicer_env):
    version, manifest = slicer_env
    header, pins = slicer_versions.read_pin_file(slicer_versions.pin_file(version))
    assert manifest["python"].split(".")[:2] == header["python"].split(".")[:2]
    assert manifest["layers"]["slicer"] == pins
    script = ("import importlib.metadata as m, json, re\n"
              "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in m.distributions()}))")  # fmt: skip
    installed = last_json(compat_run.run_in(version, ["-c", script], compat_run.INSTALLED))
    changed = {name: (pinned, installed.get(name)) for name, pinned in pins.items() if installed.get(name) != pinned}
    assert changed == {}, "a later layer replaced packages Slicer ships"
    slicer_core, vtk = (spec.split("==")[1] for spec in header["mrml-wheel"].split())
    assert installed["slicer-core"] == slicer_core and installed["vtk"] == vtk
    for name in manifest["layers"]["hub"]:
        assert name not in pins, f"the hub installed {name}, which Slicer {version} ships"


def test_imports_outside_the_present_layers_are_blocked(slicer_env):
    version, _ = slicer_env
    script = (
        "import importlib, json\n"
        "out = {}\n"
        "for name in ('numpy', 'scipy', 'pydicom', 'SimpleITK', 'packaging', 'onnxruntime', 'yaml', 'radiomics', 'pytest'):\n"
        "    try:\n"
        "        importlib.import_module(name); out[name] = 'ok'\n"
        "    except ImportError as exc:\n"
        "        out[name] = str(exc)\n"
        "print(json.dumps(out))"
    )
    before = last_json(compat_run.run_in(version, ["-c", script], compat_run.BEFORE_INSTALL))
    for name in ("numpy", "scipy", "pydicom", "SimpleITK", "packaging"):  # (slicer and vtk: the MRML tests import them)
        assert before[name] == "ok", before[name]
    for name, layer in (("onnxruntime", "hub"), ("yaml", "hub"), ("radiomics", "extension"), ("pytest", "harness")):
        assert f"belongs to the '{layer}' layer" in before[name], before[name]
    after = last_json(compat_run.run_in(version, ["-c", script], compat_run.INSTALLED))
    assert [name for name, state in after.items() if state != "ok"] == ["pytest"]


def test_lib_packages_import_and_the_hub_plans_only_pip_only_packages_before_any_install(slicer_env):
    """A fresh Slicer (SlicerRadiomics and the hub's packages not there yet): the modules load, the
    hub shows its model cards and plans to install exactly the pip-only packages."""
    version, manifest = slicer_env
    hub = {name for layer in ("hub", "harness") for name in manifest["layers"][layer]}
    extension = set(manifest["layers"]["extension"])
    script = (
        "import importlib, importlib.metadata as md, json, pkgutil, re, sys\n"
        "import CervicalAIHubLib, CervicalAISegmentLib, CervicalAIPredictLib\n"
        "names = []\n"
        "for package in (CervicalAIHubLib, CervicalAISegmentLib, CervicalAIPredictLib):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name); names.append(info.name)\n"
        "def version_of_without(absent):\n"
        "    def version_of(name):\n"
        "        if re.sub(r'[-_.]+', '-', name).lower() in absent: return None\n"
        "        try: return md.version(name)\n"
        "        except md.PackageNotFoundError: return None\n"
        "    return version_of\n"
        "from CervicalAIHubLib.dependencies import install_plan\n"
        "from CervicalAIHubLib.bundles import bundle_cards, chosen_models_dir\n"
        f"plan = install_plan('cpu', version_of_without(set({sorted(hub)!r})))\n"
        f"bare = install_plan('cpu', version_of_without(set({sorted(hub | extension)!r})))\n"
        "cards = bundle_cards(chosen_models_dir(''))\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {PIP_ONLY_MODULES!r})\n"
        "print(json.dumps({'modules': names, 'to_install': plan.to_install, 'problems': plan.slicer_problems,"
        " 'extension': plan.extension_missing, 'constraints': plan.constraints, 'loaded': loaded,"
        " 'bare_to_install': bare.to_install, 'bare_extension': bare.extension_missing,"
        " 'unusable': [c.title() for c in cards if not c.usable]}))"
    )
    found = last_json(compat_run.run_in(version, ["-c", script], compat_run.BEFORE_INSTALL))
    assert len(found["modules"]) >= 13 and "CervicalAISegmentLib.review" in found["modules"]
    assert found["loaded"] == []  # no pip-only package is even attempted at import time
    assert found["to_install"] == HUB_INSTALLS and found["problems"] == [] and found["extension"] == []
    # without SlicerRadiomics too: its pywt/pykwalify are pip-installable, pyradiomics is left to the extension
    assert found["bare_to_install"] == HUB_INSTALLS[:2] + ["PyWavelets>=1.6", "pykwalify>=1.8"] + HUB_INSTALLS[2:]
    assert found["bare_extension"] == ["pyradiomics (import radiomics): install the SlicerRadiomics extension"]
    shipped = slicer_versions.bundled(version, with_extension=False)
    vtk = manifest["mrml_wheel"].split("vtk==")[1]
    expected = [f"{name}=={vtk if name == 'vtk' else shipped[slicer_versions.normalise(name)]}"
                for name in ("numpy", "SimpleITK", "vtk", "scipy", "pydicom", "packaging")]  # fmt: skip
    assert found["constraints"] == expected  # Slicer's own packages held at the versions it ships
    assert found["unusable"] == []  # model cards verified without any pip-only package


def test_after_the_hubs_installation_the_plan_is_complete(slicer_env):
    version, manifest = slicer_env
    assert manifest["hub_plan"]["to_install"] == HUB_INSTALLS  # what the build's own install_plan() asked for
    script = ("import json\nfrom CervicalAIHubLib.dependencies import install_plan\np = install_plan('cpu')\n"
              "print(json.dumps({'complete': p.complete, 'message': p.message()}))")  # fmt: skip
    found = last_json(compat_run.run_in(version, ["-c", script], compat_run.INSTALLED))
    assert found["complete"], found["message"]


@pytest.fixture(scope="module")
def lbp3d_reference(tmp_path_factory):
    """LBP3D images of a small volume in the main environment (pyradiomics' own filter, scipy 1.16)."""
    import SimpleITK as sitk
    from radiomics import imageoperations

    folder = tmp_path_factory.mktemp("lbp3d")
    rng = np.random.default_rng(11)
    image = rng.normal(100.0, 20.0, (12, 18, 16))
    image[4:8, 5:13, 4:11] += 50.0
    mask = np.zeros(image.shape, np.uint32)
    mask[4:8, 5:13, 4:11] = 1
    sitk_image, sitk_mask = sitk.GetImageFromArray(image), sitk.GetImageFromArray(mask)
    images = {name: sitk.GetArrayFromImage(result) * (mask == 1)
              for result, name, _ in imageoperations.getLBP3DImage(sitk_image, sitk_mask, lbp3DLevels=2)}  # fmt: skip
    assert sorted(images) == ["lbp-3D-k", "lbp-3D-m1", "lbp-3D-m2"]
    np.savez(folder / "reference.npz", image=image, mask=mask, **images)
    return folder / "reference.npz"


def test_lbp3d_gives_pyradiomics_images_on_this_scipy(slicer_env, lbp3d_reference):
    """Slicer 5.10 ships scipy 1.13 (pyradiomics' LBP3D works), 5.12+ scipy 1.17 (it yields nothing):
    the engine's LBP3D gives the main environment's images on both."""
    version, _ = slicer_env
    script = (
        "import json, logging, sys, numpy as np, scipy, SimpleITK as sitk\n"
        "from radiomics import imageoperations\n"
        "from CervicalAILib.features.radiomic.lbp3d import lbp3d_images\n"
        f"ref = np.load({str(lbp3d_reference)!r})\n"
        "image, mask = sitk.GetImageFromArray(ref['image']), sitk.GetImageFromArray(ref['mask'])\n"
        "inside = ref['mask'] == 1\n"
        "logging.disable(logging.CRITICAL)\n"
        "own = {n: sitk.GetArrayFromImage(i) for i, n, _ in imageoperations.getLBP3DImage(image, mask, lbp3DLevels=2)}\n"
        "ours = {n: sitk.GetArrayFromImage(i) for i, n, _ in lbp3d_images(image, mask, lbp3DLevels=2)}\n"
        "diff = {n: float(np.max(np.abs(ours[n][inside] - ref[n][inside]) / np.maximum(1.0, np.abs(ref[n][inside])))) for n in ours}\n"
        "print(json.dumps({'scipy': scipy.__version__, 'pyradiomics_images': sorted(own), 'ours': sorted(ours), 'diff': diff}))"
    )
    found = last_json(compat_run.run_in(version, ["-c", script], compat_run.INSTALLED))
    shipped = slicer_versions.bundled(version)["scipy"]
    assert found["scipy"] == shipped
    if tuple(int(part) for part in shipped.split(".")[:2]) >= (1, 17):
        assert found["pyradiomics_images"] == []  # the breakage this works around
    else:
        assert found["pyradiomics_images"] == ["lbp-3D-k", "lbp-3D-m1", "lbp-3D-m2"]
    assert found["ours"] == ["lbp-3D-k", "lbp-3D-m1", "lbp-3D-m2"]
    assert max(found["diff"].values()) < 1e-12, found["diff"]


@pytest.fixture(scope="module")
def chain_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain") / "inputs"
    import subprocess

    result = subprocess.run([sys.executable, str(CHAIN), "make-inputs", str(folder)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return folder


def in_parallel(jobs: dict, workers: int = 2) -> dict:
    """{key: result of calling job} with `workers` jobs at a time (each one mostly a child process)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def chain_jobs(chain_inputs, work) -> dict:
    """The chain in the main environment (the reference) and in every stand-in."""
    import subprocess

    jobs = {("chain", "main"): lambda: subprocess.run([sys.executable, str(CHAIN), "run", str(chain_inputs), str(work / "main")],
                                                      capture_output=True, text=True, timeout=900)}  # fmt: skip
    for version in VERSIONS:
        jobs[("chain", version)] = (lambda v: lambda: compat_run.run_in(
            v, [str(CHAIN), "run", str(chain_inputs), str(work / v)], compat_run.INSTALLED, timeout=900))(version)  # fmt: skip
    return jobs


def mrml_jobs(tmp_path_factory) -> dict:
    """The MRML logic tests run by pytest inside every stand-in."""
    files = [str(REPO / "Testing" / "python" / name) for name in MRML_TEST_FILES]
    jobs = {}
    for version in VERSIONS:
        folder = tmp_path_factory.mktemp(f"mrml-{version}")
        jobs[("mrml", version)] = (lambda v, cwd: lambda: compat_run.run_in(
            v, ["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml"),
                *files], compat_run.TESTING, cwd=cwd, timeout=900))(version, folder)  # fmt: skip
    return jobs


@pytest.fixture(scope="module")
def stand_in_runs(chain_inputs, tmp_path_factory):
    """{(kind, environment): result} of the chains and the MRML test runs, two at a time in one pool
    (two pools one after the other left a worker idle while the last job of each ran)."""
    for version in VERSIONS:
        compat_run.environment(version)
    return in_parallel({**chain_jobs(chain_inputs, tmp_path_factory.mktemp("chains")), **mrml_jobs(tmp_path_factory)})


@pytest.fixture(scope="module")
def chain_runs(stand_in_runs):
    return {where: result for (kind, where), result in stand_in_runs.items() if kind == "chain"}


@pytest.fixture(scope="module")
def mrml_runs(stand_in_runs):
    return {where: result for (kind, where), result in stand_in_runs.items() if kind == "mrml"}


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def test_engine_end_to_end_gives_the_main_environments_readout(slicer_env, chain_runs):
    version, _ = slicer_env
    main_readout = last_json(chain_runs["main"])
    found = last_json(chain_runs[version])
    shipped = slicer_versions.bundled(version)
    assert found["packages"]["numpy"] == shipped["numpy"] and found["packages"]["pydicom"] == shipped["pydicom"]
    assert found["packages"]["scipy"] == shipped["scipy"] and found["packages"]["SimpleITK"] == shipped["simpleitk"]
    ours, main = found["readout"], main_readout["readout"]
    assert main["lnm_probability"] is not None and len(main["radiomics"]) >= 10 and main["deep"]
    for key in ("lnm_probability", "stage_group_probability"):
        assert abs(ours[key] - main[key]) <= PROBABILITY_TOLERANCE, (key, ours[key], main[key])
    for key in ("rad_score", "dl_score", "total_points"):
        assert relative(ours[key], main[key]) <= SCORE_TOLERANCE, (key, ours[key], main[key])
    assert ours["stage_group"] == main["stage_group"] and ours["warnings"] == main["warnings"]
    assert sorted(ours["radiomics"]) == sorted(main["radiomics"])  # LBP3D features included (scipy 1.17 too)
    for name, value in main["radiomics"].items():
        assert relative(ours["radiomics"][name], value) <= FEATURE_TOLERANCE, (name, ours["radiomics"][name], value)
    for name, value in main["deep"].items():
        assert abs(ours["deep"][name] - value) <= 1e-5, (name, ours["deep"][name], value)
    assert math.isclose(found["segmentation"]["volume_ml"], main_readout["segmentation"]["volume_ml"], abs_tol=1e-3)
    assert found["review"] == main_readout["review"] == {"origin": "automatic", "dice": 1.0}
    assert found["report"] == ["report.html", "report.pdf"]
    exports = ["tumor.nii.gz", "tumor.nii.gz.manifest.json", "tumor.seg.nrrd", "tumor.seg.nrrd.manifest.json"]
    if "highdicom" in shipped:  # Slicer 5.12+ ships highdicom: the DICOM SEG export runs there too
        exports = ["seg.dcm", "seg.dcm.manifest.json", *exports]
    assert found["exports"] == exports


def test_mrml_logic_tests_pass_on_this_slicer_core(slicer_env, mrml_runs):
    version, _ = slicer_env
    result = mrml_runs[version]
    output = check(result)
    summary = output.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 100, summary
    assert "failed" not in summary and "error" not in summary, summary
    assert "needs the slicer-core wheel" not in output  # nothing skipped for want of MRML


# --- Slicer APIs against the oldest supported slicer-core ------------------------------------------------

def module_api_uses() -> dict[str, list[str]]:
    """Slicer APIs used by the module files, their Lib packages and the engine's MRML bridge."""
    from api_scan import slicer_api_uses

    files = [REPO / module / f"{module}.py" for module in ("CervicalAI", "CervicalAISegment", "CervicalAIPredict")]
    for lib in ("CervicalAI/CervicalAIHubLib", "CervicalAISegment/CervicalAISegmentLib", "CervicalAIPredict/CervicalAIPredictLib"):
        files += sorted((REPO / lib).rglob("*.py"))
    files.append(REPO / "CervicalAI" / "CervicalAILib" / "io" / "mrml.py")
    uses: dict[str, set[str]] = {"util": set(), "slicer": set(), "methods": set()}
    for path in files:
        for kind, names in slicer_api_uses(path.read_text()).items():
            uses[kind] |= names
    return {kind: sorted(names) for kind, names in uses.items()}


def test_slicer_apis_the_modules_use_exist_in_the_oldest_supported_slicer_core():
    """Every slicer.util function, slicer class and capitalised (VTK/MRML) method the modules call
    exists in the slicer-core wheel closest to Slicer 5.10 (5.11.0.6, whose util.py has the same
    functions as 5.10.0's); application-only names and version-branched ones are listed in api_scan."""
    version = VERSIONS[0]
    compat_run.environment(version)
    uses = module_api_uses()
    assert len(uses["methods"]) > 50 and "SetTag" in uses["methods"] and "pip_install" in uses["util"]
    code = ("import json, sys\n"
            f"sys.path.insert(0, {str(REPO / 'Testing' / 'compat')!r})\n"
            "from api_scan import missing_apis\n"
            "print(json.dumps(missing_apis(json.loads(sys.argv[1]))))")  # fmt: skip
    missing = last_json(compat_run.run_in(version, ["-c", code, json.dumps(uses)], compat_run.INSTALLED))
    assert missing == {"util": [], "slicer": [], "methods": []}


def test_the_api_check_finds_what_slicer_core_lacks():
    from api_scan import missing_apis, slicer_api_uses

    source = ("import slicer\nimport SimpleITK as sitk\n"
              "def f(segment, scene):\n"
              "    segment.SetTerminologyCodes('x')\n    slicer.util.pip_ensure('x')\n    slicer.vtkMRMLFancyNode()\n"
              "    scene.GetNodesByClass('vtkMRMLScalarVolumeNode')\n    sitk.ReadImage('x')\n    slicer.packaging.pip_ensure('y')\n")  # fmt: skip
    uses = slicer_api_uses(source)
    assert uses["methods"] == {"SetTerminologyCodes", "GetNodesByClass"}  # module functions (sitk.ReadImage) are not methods
    assert missing_apis({kind: sorted(names) for kind, names in uses.items()}) == {
        "util": ["pip_ensure"], "slicer": ["vtkMRMLFancyNode"], "methods": ["SetTerminologyCodes"]}
