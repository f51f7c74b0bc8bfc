#!/usr/bin/python3
"""test/meta_check.py — checks META.json for PGXN (meta-spec 1.0.0).

Prints TAP.  Checks: well-formed JSON; the spec's required keys; the
control file is the one source of the version (META.json's version and each
provided extension's version equal default_version); the name and the
runtime prerequisites agree with the control file, and PostgreSQL is the
major version the tests run on (15); versions are semantic;
the license is one PGXN knows; every file META.json names exists, and the
provided extension's file is the install script of the current version.

Usage: test/meta_check.py [ROOT]   (ROOT defaults to the repository root)
"""
import json
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
REQUIRED = ["name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"]
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
            "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
            "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
            "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown"}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+)?$")

n = 0
failed = 0


def check(ok, what):
    global n, failed
    n += 1
    print(("ok" if ok else "not ok"), n, "-", what)
    if not ok:
        failed += 1
    return ok


def control(root):
    """(extension name, key -> value) from the one .control file"""
    files = [f for f in os.listdir(root) if f.endswith(".control")]
    if len(files) != 1:
        return None, {}
    values = {}
    with open(os.path.join(root, files[0])) as fh:
        for line in fh:
            m = re.match(r"^\s*(\w+)\s*=\s*'?([^'#]*?)'?\s*(#.*)?$", line)
            if m:
                values[m.group(1)] = m.group(2)
    return files[0][:-len(".control")], values


def main():
    try:
        with open(os.path.join(ROOT, "META.json")) as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as e:
        check(False, f"META.json is well-formed JSON ({e})")
        print(f"1..{n}")
        return 1
    check(isinstance(meta, dict), "META.json is well-formed JSON (an object)")

    for key in REQUIRED:
        check(key in meta and meta[key] not in ("", [], {}, None), f"required key {key}")
    spec = meta.get("meta-spec", {})
    check(isinstance(spec, dict) and spec.get("version") == "1.0.0", "meta-spec version 1.0.0")

    ext, ctl = control(ROOT)
    version = ctl.get("default_version")
    check(ext is not None and version is not None, "one .control file with default_version")
    check(meta.get("name") == ext, f"name is the extension's name ({ext})")
    check(meta.get("version") == version, f"version equals the control file's default_version ({version})")
    check(bool(SEMVER.match(str(meta.get("version", "")))), "version is a semantic version")
    check(isinstance(meta.get("abstract"), str), "abstract is a string")
    maint = meta.get("maintainer")
    check(isinstance(maint, str) or (isinstance(maint, list) and maint
                                      and all(isinstance(m, str) and m for m in maint)),
          "maintainer is a string or a list of strings")
    lic = meta.get("license")
    lics = lic if isinstance(lic, list) else list(lic) if isinstance(lic, dict) else [lic]
    check(all(isinstance(x, str) and (x in LICENSES or isinstance(lic, dict)) for x in lics) and lics,
          f"license is one PGXN knows ({lic})")
    if "release_status" in meta:
        check(meta["release_status"] in ("stable", "testing", "unstable"), "release_status is valid")

    provides = meta.get("provides", {})
    check(isinstance(provides, dict) and ext in provides, f"provides the extension {ext}")
    for name, p in (provides.items() if isinstance(provides, dict) else []):
        check(isinstance(p, dict) and "file" in p and "version" in p, f"provides.{name} has file and version")
        check(p.get("version") == version, f"provides.{name}.version equals the control file's ({version})")
        for k in ("file", "docfile"):
            if k in p:
                check(os.path.isfile(os.path.join(ROOT, p[k])), f"provides.{name}.{k} {p[k]} exists")
        if name == ext:
            check(p.get("file") == f"src/extension/{ext}--{version}.sql",
                  f"provides.{name}.file is the install script of {version}")

    requires = meta.get("prereqs", {}).get("runtime", {}).get("requires", {})
    check("PostgreSQL" in requires, "prereqs.runtime.requires names PostgreSQL")
    # what is tested: PostgreSQL 15 (Debian 12's), and only 15
    check(str(requires.get("PostgreSQL", "")).replace(" ", "") == ">=15.0.0,<16.0.0",
          f"the PostgreSQL prerequisite is the tested major version, 15 ({requires.get('PostgreSQL')})")
    for dep in [d.strip() for d in ctl.get("requires", "").split(",") if d.strip()]:
        check(dep in requires, f"prereqs.runtime.requires has {dep} (the control file's requires)")
    for url in [v for r in meta.get("resources", {}).values() if isinstance(r, dict)
                for k, v in r.items() if k in ("web", "url")]:
        check(re.match(r"^https?://", url) is not None, f"resource URL {url}")
    for f in meta.get("no_index", {}).get("file", []):
        check(os.path.exists(os.path.join(ROOT, f)), f"no_index file {f} exists")
    for d in meta.get("no_index", {}).get("directory", []):
        check(os.path.isdir(os.path.join(ROOT, d)), f"no_index directory {d} exists")

    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
