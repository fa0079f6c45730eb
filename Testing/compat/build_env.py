"""Build (or reuse) the environments of the compatibility tier: one per supported 3D Slicer version.

Each environment stands for one Slicer version's Python, built in layers (each recorded in the
environment's manifest, `cervicalai-compat.json`, and blockable at run time, see
`cervicalai_compat_block.py`):

    slicer     the packages that Slicer version bundles, exact pins read from its source
               (requirements/compat/slicer-<version>.txt, written by tools/slicer_compat_pins.py),
               on the closest Python this machine has (pyenv's 3.12 for Slicer's 3.12.10)
    mrml       the slicer-core wheel closest to that version and the VTK it needs: real MRML and
               VTK, standing for what Slicer builds in (its VTK version is in the pin file header)
    extension  what SlicerRadiomics adds (requirements/compat/slicerradiomics.txt), installed with
               Slicer's pins as constraints
    hub        what the CervicalAI hub installs: `install_plan()` run inside the environment, its
               requirements installed with its own constraints (Slicer's packages held as they are)
               and, for reproducible builds, the project's lock (requirements/constraints.txt) for
               the pip-only packages
    harness    pytest, to run the MRML tests in the environment

The build fails when a layer changes a package of an earlier layer (nothing Slicer ships may be
replaced). An environment is rebuilt only when its key changes: a hash of every file that decides
its content (pin files, the lock, this script, the blocker, the hub's dependency rules).

    python Testing/compat/build_env.py            # all versions, reusing what is up to date
    python Testing/compat/build_env.py 5.10 --force

Needs only the standard library (runs under any Python 3.11+); the environments need a Python
3.12 interpreter: $CERVICALAI_COMPAT_PYTHON312, `python3.12` on PATH, or pyenv's 3.12.x.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from slicer_versions import EXTENSION_FILE, REPO, normalise, pin_file, read_pin_file
from slicer_versions import SUPPORTED as VERSIONS

COMPAT_DIR = Path(os.environ.get("CERVICALAI_COMPAT_DIR", REPO / ".compat-envs"))
LAYERS = ("slicer", "mrml", "extension", "hub", "harness")
LOCK_FILE = REPO / "requirements" / "constraints.txt"
BLOCKER = Path(__file__).with_name("cervicalai_compat_block.py")
HUB_RULES = REPO / "CervicalAI" / "CervicalAIHubLib" / "dependencies.py"
MANIFEST = "cervicalai-compat.json"
KEY_FILE = "cervicalai-compat.key"
# versions from the lock, installed with --no-deps; onnx (+ ml_dtypes) builds the tiny test networks of two MRML tests
HARNESS = ("pytest", "iniconfig", "pluggy", "Pygments", "onnx", "ml_dtypes")
# The project's own import roots, as Slicer puts the module folders on sys.path.
PROJECT_PATHS = (REPO / "CervicalAI", REPO / "CervicalAISegment", REPO / "CervicalAIPredict")


class BuildError(RuntimeError):
    pass


def env_dir(version: str) -> Path:
    return COMPAT_DIR / f"slicer-{version}"


def env_python(version: str) -> Path:
    return env_dir(version) / "bin" / "python"


def env_key(version: str) -> str:
    digest = hashlib.sha256()
    for path in (pin_file(version), EXTENSION_FILE, LOCK_FILE, Path(__file__), Path(__file__).with_name("slicer_versions.py"),
                 BLOCKER, HUB_RULES):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def is_current(version: str) -> bool:
    key_path = env_dir(version) / KEY_FILE
    return key_path.is_file() and key_path.read_text().strip() == env_key(version) and env_python(version).exists()


def read_manifest(version: str) -> dict:
    site = _site_packages_of(env_dir(version))
    return json.loads((site / MANIFEST).read_text(encoding="utf-8"))


def _site_packages_of(env: Path) -> Path:
    found = sorted(env.glob("lib/python3*/site-packages"))
    if not found:
        raise BuildError(f"{env} has no site-packages")
    return found[0]


def find_python(wanted: str) -> str:
    """A Python interpreter of the same major.minor as `wanted` (e.g. 3.12.10 -> any 3.12)."""
    major_minor = ".".join(wanted.split(".")[:2])
    candidates = []
    if os.environ.get(f"CERVICALAI_COMPAT_PYTHON{major_minor.replace('.', '')}"):
        candidates.append(os.environ[f"CERVICALAI_COMPAT_PYTHON{major_minor.replace('.', '')}"])
    if shutil.which(f"python{major_minor}"):
        candidates.append(shutil.which(f"python{major_minor}"))
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{major_minor}.*/bin/python{major_minor}"), reverse=True)
    for candidate in candidates:
        result = subprocess.run([candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode == 0 and result.stdout.strip() == major_minor:
            return candidate
    raise BuildError(
        f"no Python {major_minor} found for the Slicer stand-in (looked at $CERVICALAI_COMPAT_PYTHON"
        f"{major_minor.replace('.', '')}, python{major_minor} on PATH, {pyenv_root}/versions/{major_minor}.*)"
    )


class _Builder:
    def __init__(self, version: str, log):
        self.version = version
        self.env = env_dir(version)
        self.log_file = COMPAT_DIR / f"slicer-{version}.build.log"
        self.say = log
        self.header, self.pins = read_pin_file(pin_file(version))
        self.python = self.env / "bin" / "python"

    def run(self, command: list[str], extra_env: dict[str, str] | None = None, what: str = "") -> str:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CERVICALAI_COMPAT_LAYERS")}
        env.pop("PYTHONPATH", None)
        env.update(extra_env or {})
        started = time.perf_counter()
        result = subprocess.run([str(part) for part in command], capture_output=True, text=True, env=env)
        with open(self.log_file, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(map(str, command))}  ({time.perf_counter() - started:.1f} s, exit {result.returncode})\n")
            log.write(result.stdout + result.stderr + "\n")
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise BuildError(f"Slicer {self.version} stand-in: {what or command[:4]} failed (log: {self.log_file}):\n{tail}")
        return result.stdout

    def pip(self, *arguments: str, what: str, extra_env: dict[str, str] | None = None) -> None:
        # --no-compile: no .pyc for the ~30 000 files (numpy, scipy, VTK): minutes on a busy disk, made on import instead
        self.run([self.python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", "--no-compile", *arguments],
                 extra_env=extra_env, what=what)  # fmt: skip

    def installed(self) -> dict[str, str]:
        out = self.run([self.python, "-c", "import importlib.metadata as m, json; print(json.dumps("
                        "{d.metadata['Name']: d.version for d in m.distributions()}))"], what="listing packages")  # fmt: skip
        return {normalise(name): version for name, version in json.loads(out).items()}

    def in_env_json(self, code: str, what: str) -> dict:
        env = {"PYTHONPATH": os.pathsep.join(str(p) for p in PROJECT_PATHS)}
        return json.loads(self.run([self.python, "-c", code], extra_env=env, what=what).strip().splitlines()[-1])

    def donor(self) -> str | None:
        """An earlier supported version whose environment differs from this one only in its MRML layer
        (same Python, same bundled pins: 5.12 for the 5.13 preview today). Its environment is copied
        with hard links and the MRML layer replaced, instead of installing everything again."""
        for other in VERSIONS[: VERSIONS.index(self.version)]:
            head, pins = read_pin_file(pin_file(other))
            if pins == self.pins and head["python"].split(".")[:2] == self.header["python"].split(".")[:2]:
                return other
        return None

    def build(self) -> dict:
        started = time.perf_counter()
        key = env_key(self.version)  # of the files as they are now (not after edits made during the build)
        COMPAT_DIR.mkdir(parents=True, exist_ok=True)
        self.log_file.write_text("")
        if self.env.exists():
            shutil.rmtree(self.env)
        donor = self.donor()
        if donor is not None:
            layers, seen, lock_dir, hidden = self._clone(donor)
        else:
            layers, seen, lock_dir = self._install_base()
            hidden = []
        slicer_layers = set(layers["slicer"]) | set(layers["mrml"]) | set(layers["extension"])

        # hub: what install_plan() asks for, with its own constraints, as CervicalAIHubLib.application.ensure_dependencies does
        # (in a cloned environment the donor's hub packages are hidden from the plan: pip then has nothing to do)
        plan = self.in_env_json(
            "import importlib.metadata as md, json, re\n"
            "from CervicalAIHubLib.dependencies import install_plan, constraints_text\n"
            f"hidden = set({sorted(hidden)!r})\n"
            "def version_of(name):\n"
            "    if re.sub(r'[-_.]+', '-', name).lower() in hidden: return None\n"
            "    try: return md.version(name)\n"
            "    except md.PackageNotFoundError: return None\n"
            "p = install_plan('cpu', version_of)\n"
            "print(json.dumps({'to_install': p.to_install, 'constraints': p.constraints, 'text': constraints_text(p),"
            " 'slicer_problems': p.slicer_problems, 'extension_missing': p.extension_missing}))",
            "computing the hub's install plan",
        )
        if plan["slicer_problems"] or plan["extension_missing"]:
            raise BuildError(f"Slicer {self.version} stand-in: the hub refuses this Slicer: "
                             f"{plan['slicer_problems'] + plan['extension_missing']}")  # fmt: skip
        hub_constraints = lock_dir / "hub-constraints.txt"
        hub_constraints.write_text(plan["text"])
        hub_lock = lock_dir / "hub-lock.txt"
        _, lock = read_pin_file(LOCK_FILE)
        hub_lock.write_text("".join(f"{name}=={version}\n" for name, version in sorted(lock.items()) if name not in slicer_layers))
        if plan["to_install"]:
            self.pip(*plan["to_install"], "-c", hub_constraints, "-c", hub_lock, what="installing the hub's packages")
        new = self._new(seen)
        if donor is None:
            layers["hub"] = new
            # harness: pytest (and its plugins' deps) from the lock, nothing else
            self.pip("--no-deps", *(f"{name}=={lock[normalise(name)]}" for name in HARNESS), what="installing pytest")
            layers["harness"] = self._new(seen)
        elif new:
            raise BuildError(f"Slicer {self.version} stand-in: the hub's plan changed the copied environment: {new}")

        final = self.installed()
        changed = {name: (version, final.get(name)) for layer in ("slicer", "mrml", "extension")
                   for name, version in layers[layer].items() if final.get(name) != version}  # fmt: skip
        if changed:
            raise BuildError(f"Slicer {self.version} stand-in: a later layer replaced packages: {changed}")

        site = _site_packages_of(self.env)
        modules = self.in_env_json(
            "import importlib.metadata as m, json\n"
            "out = {}\n"
            "for d in m.distributions():\n"
            "    tops = set()\n"
            "    text = d.read_text('top_level.txt')\n"
            "    if text: tops |= {t.strip() for t in text.split() if t.strip()}\n"
            "    for f in d.files or []:\n"
            "        parts = f.parts\n"
            "        if len(parts) > 1 and not parts[0].endswith(('.dist-info', '.egg-info', '.data')) and parts[0] != '..':\n"
            "            tops.add(parts[0])\n"
            "        elif len(parts) == 1 and parts[0].endswith(('.py', '.so')):\n"
            "            tops.add(parts[0].split('.')[0])\n"
            "    out[d.metadata['Name']] = sorted(t for t in tops if t.isidentifier())\n"
            "print(json.dumps(out))",
            "listing top-level modules",
        )
        module_layer: dict[str, str] = {}
        layer_of = {name: layer for layer, dists in layers.items() for name in dists}
        for dist, tops in modules.items():
            layer = layer_of.get(normalise(dist))
            if layer is None:
                continue  # the venv's own pip/setuptools when Slicer pins them: counted in "slicer"
            for top in tops:
                if top.startswith("_distutils_hack") or top == "cervicalai_compat_block":
                    continue
                module_layer.setdefault(top, layer)
        version_info = self.run([self.python, "-c", "import platform; print(platform.python_version())"]).strip()
        manifest = {
            "slicer": self.version,
            "slicer_tag": self.header.get("slicer-tag", ""),
            "slicer_python": self.header["python"],
            "python": version_info,
            "vtk_built_in": self.header.get("vtk-built-in", ""),
            "mrml_wheel": self.header["mrml-wheel"],
            "copied_from": donor,
            "layers": {layer: layers[layer] for layer in LAYERS},
            "hub_plan": {"to_install": plan["to_install"], "constraints": plan["constraints"]},
            "modules": module_layer,
            "key": key,
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        (site / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        shutil.copyfile(BLOCKER, site / BLOCKER.name)
        (site / "cervicalai_compat_block.pth").write_text("import cervicalai_compat_block\n")
        (self.env / KEY_FILE).write_text(manifest["key"] + "\n")
        return manifest

    def _install_base(self) -> tuple[dict, dict, Path]:
        """A new venv with the slicer, mrml and extension layers; (layers, installed, lock folder)."""
        base = find_python(self.header["python"])
        self.run([base, "-m", "venv", self.env], what="creating the venv")
        layers: dict[str, dict[str, str]] = {}
        seen = self.installed()
        lock_dir = self.env / "cervicalai-compat"
        lock_dir.mkdir()

        # slicer: exactly Slicer's list (--no-deps: Slicer installs a closed, hashed list)
        self.pip("--no-deps", "-r", pin_file(self.version), what="installing Slicer's bundled packages")
        layers["slicer"] = self._new(seen)
        missing = {name: version for name, version in self.pins.items() if layers["slicer"].get(name) != version}
        if missing:
            raise BuildError(f"Slicer {self.version} stand-in: pins not installed as written: {missing}")
        slicer_constraints = lock_dir / "slicer-constraints.txt"
        slicer_constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(self.pins.items())))

        # mrml: the slicer-core wheel and its VTK (no other dependency: VTK's optional matplotlib is not Slicer's)
        self.pip("--no-deps", *self.header["mrml-wheel"].split(), what="installing slicer-core and VTK")
        layers["mrml"] = self._new(seen)

        # extension: SlicerRadiomics' packages (pyradiomics from the shared wheel), held by Slicer's pins
        wheels = self.extension_wheels()
        self.pip("-r", EXTENSION_FILE, "-c", slicer_constraints, "--find-links", wheels,
                 "--only-binary", "pyradiomics-bhklab", what="installing SlicerRadiomics' packages")  # fmt: skip
        layers["extension"] = self._new(seen)
        return layers, seen, lock_dir

    def _clone(self, donor: str) -> tuple[dict, dict, Path, list[str]]:
        """This environment as a hard-linked copy of `donor`'s with the MRML layer replaced;
        (layers, installed, lock folder, the donor's hub packages to hide from the plan)."""
        manifest = ensure(donor, log=self.say)
        self.say(f"compat: Slicer {self.version} differs from {donor} only in slicer-core/VTK: copying {env_dir(donor)}")
        shutil.copytree(env_dir(donor), self.env, symlinks=True, copy_function=os.link)
        for stale in (self.env / KEY_FILE, _site_packages_of(self.env) / MANIFEST):
            stale.unlink()
        layers = {layer: dict(manifest["layers"][layer]) for layer in ("slicer", "extension", "hub", "harness")}
        seen = self.installed()
        self.run([self.python, "-m", "pip", "--disable-pip-version-check", "uninstall", "--quiet", "--yes",
                  *manifest["layers"]["mrml"]], what="removing the donor's slicer-core and VTK")  # fmt: skip
        seen = self.installed()
        self.pip("--no-deps", *self.header["mrml-wheel"].split(), what="installing slicer-core and VTK")
        layers["mrml"] = self._new(seen)
        return layers, seen, self.env / "cervicalai-compat", sorted(layers["hub"])

    def extension_wheels(self) -> Path:
        """A folder with pyradiomics built once for every environment, against the oldest supported
        Slicer's numpy and setuptools (NumPy's C API is forward compatible, so the wheel also runs
        on the newer numpy of 5.12+), as SlicerRadiomics builds it in Slicer's Python."""
        _, oldest = read_pin_file(pin_file(VERSIONS[0]))
        build_pins = "".join(f"{name}=={oldest[name]}\n" for name in ("numpy", "setuptools", "wheel"))
        key = hashlib.sha256((EXTENSION_FILE.read_text() + build_pins).encode()).hexdigest()[:16]
        folder = COMPAT_DIR / "wheels" / key
        with _lock("wheels"):
            if not (folder / "complete").is_file():
                if folder.exists():
                    shutil.rmtree(folder)
                folder.mkdir(parents=True)
                (folder / "build-constraints.txt").write_text(build_pins)
                radiomics = next(line.strip() for line in EXTENSION_FILE.read_text().splitlines()
                                 if line.strip().lower().startswith("pyradiomics"))  # fmt: skip
                self.run([self.python, "-m", "pip", "--disable-pip-version-check", "wheel", "--quiet", "--no-deps",
                          "-w", folder, radiomics], extra_env={"PIP_CONSTRAINT": str(folder / "build-constraints.txt")},
                         what="building pyradiomics")  # fmt: skip
                (folder / "complete").write_text("")
        return folder

    def _new(self, seen: dict[str, str]) -> dict[str, str]:
        """Distributions installed (or changed) since `seen`; updates `seen`."""
        now = self.installed()
        new = {name: version for name, version in now.items() if seen.get(name) != version}
        seen.clear()
        seen.update(now)
        return new


@contextlib.contextmanager
def _lock(name: str):
    """An exclusive lock between processes (several pytest or make runs may build at once)."""
    COMPAT_DIR.mkdir(parents=True, exist_ok=True)
    with open(COMPAT_DIR / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(version: str, force: bool = False, log=print) -> dict:
    """The manifest of an up-to-date environment for `version`, building it if needed."""
    if version not in VERSIONS:
        raise BuildError(f"unknown Slicer version {version!r} (supported: {', '.join(VERSIONS)})")
    with _lock(f"slicer-{version}"):
        if not force and is_current(version):
            return read_manifest(version)
        log(f"compat: building the Slicer {version} stand-in in {env_dir(version)} ...")
        started = time.perf_counter()
        manifest = _Builder(version, log).build()
        log(f"compat: Slicer {version} stand-in built in {time.perf_counter() - started:.0f} s")
        return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", default=list(VERSIONS), help=f"default: {' '.join(VERSIONS)}")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--jobs", type=int, default=2, help="environments built at once (default 2: most of a build waits on the disk)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    stale = [version for version in args.versions if args.force or not is_current(version)]
    for version in args.versions:
        if version not in stale:
            print(f"compat: Slicer {version}: up to date ({env_dir(version)})")
    failed = False
    if stale:
        from concurrent.futures import ThreadPoolExecutor

        def build(version: str) -> str:
            try:
                manifest = ensure(version, force=args.force, log=lambda line: print(line, flush=True))
                return f"compat: Slicer {version}: Python {manifest['python']}, built in {manifest['build_seconds']:.0f} s"
            except BuildError as exc:
                return f"compat: error: {exc}"

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for line in pool.map(build, stale):
                failed = failed or line.startswith("compat: error")
                print(line, file=sys.stderr if line.startswith("compat: error") else sys.stdout, flush=True)
    if failed:
        return 1
    print(f"compat: {len(args.versions)} environment(s) ready in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
