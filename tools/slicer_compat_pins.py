"""Write requirements/compat/slicer-<version>.txt from a 3D Slicer source checkout (one git tag).

Slicer pins the Python packages it bundles in its SuperBuild (`SuperBuild/External_python-*.cmake`,
pip requirements with hashes) and builds a few itself (SimpleITK before 5.12, VTK: their versions
are in `External_SimpleITK.cmake` / `External_VTK.cmake`). This tool reads those files at a tag and
writes the exact pins, with the header the compatibility tier reads (`Testing/compat/build_env.py`):

    python Testing/../tools/slicer_compat_pins.py --slicer-git /path/to/Slicer/.git --tag v5.12.3 \
        --name 5.12 --mrml-wheel "slicer-core==5.12.4.0 vtk==9.6.0" > requirements/compat/slicer-5.12.txt

Pins are read, never guessed: a tag without a version for a package Slicer builds is an error.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)==([0-9][^\s\\]*)")


def git_show(git_dir: str, tag: str, path: str) -> str | None:
    result = subprocess.run(["git", "--git-dir", git_dir, "show", f"{tag}:{path}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def superbuild_files(git_dir: str, tag: str) -> list[str]:
    listing = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "--name-only", tag, "SuperBuild/"],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return sorted(path for path in listing if path.startswith("SuperBuild/External_python-") and path.endswith(".cmake"))


def pins_of(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def cmake_string(text: str, variable: str) -> str | None:
    match = re.search(rf'set\({variable}\s+"([^"]+)"\)', text)
    return match.group(1) if match else None


def default_vtk_version(git_dir: str, tag: str) -> str:
    """The VTK version Slicer's default build uses (its dist-info version)."""
    top = git_show(git_dir, tag, "CMakeLists.txt") or ""
    minor = re.search(r'set\(_default_vtk_minor_version "(\d+)"\)', top)
    vtk = git_show(git_dir, tag, "SuperBuild/External_VTK.cmake") or ""
    if minor:
        block = re.search(rf'STREQUAL "9\.{minor.group(1)}"\)(.*?)(elseif|else\(\)|endif)', vtk, re.S)
        if block:
            found = cmake_string(block.group(1), "vtk_dist_info_version")
            if found:
                return found
    found = cmake_string(vtk, "vtk_egg_info_version") or cmake_string(vtk, "vtk_dist_info_version")
    if not found:
        raise SystemExit(f"{tag}: no VTK version found in SuperBuild/External_VTK.cmake")
    return found


def built_simpleitk_version(git_dir: str, tag: str) -> str | None:
    """SimpleITK's version when Slicer builds it from source (before 5.12): from the git tag comment."""
    text = git_show(git_dir, tag, "SuperBuild/External_SimpleITK.cmake")
    if text is None:
        return None
    match = re.search(r"#\s*slicer-v(\d+\.\d+\.\d+)", text)
    if not match:
        raise SystemExit(f"{tag}: External_SimpleITK.cmake names no slicer-vX.Y.Z tag")
    return match.group(1)


def python_version(git_dir: str, tag: str) -> str:
    top = git_show(git_dir, tag, "CMakeLists.txt") or ""
    found = cmake_string(top, "Slicer_REQUIRED_PYTHON_VERSION")
    if not found:
        raise SystemExit(f"{tag}: no Slicer_REQUIRED_PYTHON_VERSION in CMakeLists.txt")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slicer-git", required=True, help="git directory of a Slicer clone (with tags)")
    parser.add_argument("--tag", required=True, help="e.g. v5.10.0, v5.12.3 or main")
    parser.add_argument("--name", required=True, help="compat name, e.g. 5.10")
    parser.add_argument("--mrml-wheel", required=True, help='e.g. "slicer-core==5.11.0.6 vtk==9.6.0", or "none"')
    parser.add_argument("--unsupported", action="store_true",
                        help="a Slicer CervicalAI does not support: pins kept only for the hub's tests")
    args = parser.parse_args(argv)

    commit = subprocess.run(["git", "--git-dir", args.slicer_git, "rev-parse", args.tag],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    pins: dict[str, tuple[str, str]] = {}
    for path in superbuild_files(args.slicer_git, args.tag):
        for name, version in pins_of(git_show(args.slicer_git, args.tag, path) or "").items():
            key = name.lower().replace("_", "-")
            if key in pins and pins[key][0] != version:
                raise SystemExit(f"{args.tag}: {name} pinned twice ({pins[key][0]} and {version})")
            pins.setdefault(key, (version, path.split("/")[-1]))
    simpleitk = built_simpleitk_version(args.slicer_git, args.tag)
    if simpleitk and "simpleitk" not in pins:
        pins["simpleitk"] = (simpleitk, "External_SimpleITK.cmake (built from source)")
    out = sys.stdout
    out.write(f"# Python packages 3D Slicer {args.name} bundles, exact pins read from its source (tag {args.tag},\n")
    out.write(f"# commit {commit[:12]}) by tools/slicer_compat_pins.py. Used by the compatibility tier\n")
    if args.unsupported:
        out.write("# (Testing/compat) only as data: CervicalAI does not support this Slicer. Do not edit by hand.\n")
    else:
        out.write("# (Testing/compat/build_env.py) to stand for Slicer's Python. Do not edit by hand.\n")
    out.write(f"# slicer: {args.name}\n# supported: {'no' if args.unsupported else 'yes'}\n# slicer-tag: {args.tag}\n# python: {python_version(args.slicer_git, args.tag)}\n")
    out.write(f"# vtk-built-in: {default_vtk_version(args.slicer_git, args.tag)}\n# mrml-wheel: {args.mrml_wheel}\n")
    width = max(len(name) + len(version) for name, (version, _) in pins.items()) + 3
    for name in sorted(pins):
        version, source = pins[name]
        out.write(f"{name}=={version}".ljust(width) + f"# {source}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
