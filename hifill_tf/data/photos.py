"""The training and validation photographs: fetched from Debian packages, checked, split.

    python -m hifill_tf.data.photos --output_dir /work/data/photos

The committed `photo_manifest.json` beside this file is the curated list: one entry per kept
photograph (illustrations, renders, cut-outs and edited images were dropped by looking at every
image; the "dropped" key says which and why), with its package, version, path, author,
licence, size, SHA-256 and split. Each package under "packages" is fetched with
`apt-get download` and unpacked with `dpkg -x`, one at a time. A path `FILE::MEMBER` is a
file inside a container (a Qt .rcc resource file, an Eet .edj, a jigzo puzzle, a zip; see
`containers`); an entry with `crop` [x, y, w, h] is that region of the member (a jigzo
picture in its texture atlas), written as PNG. Everything else is copied as it is (no
re-encoding) to `DIR/train/`, `DIR/val/` and `DIR/demo/`, named `<package short name>-<name>`,
and `DIR/manifest.json` records what was written.

The photos of `shared/data/photos` are byte-identical copies of plasma wallpapers (entries with
`shared_file`): they stand in when a package no longer ships the file. A manifest entry whose
package is "shared" comes from that folder only.
"""

import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

from hifill_tf.data import containers

MANIFEST_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photo_manifest.json")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SHARED_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "photos"))
SHARED = "shared"  # the `package` of an entry that lives only in the shared folder
SPLITS = ("train", "val", "demo")  # demo: the photo of `make demo`, in neither train nor val
APT_LISTS = "/var/lib/apt/lists"


class PhotoError(RuntimeError):
    """A package or photo is unusable: the message names it and says what was wrong."""


def load_manifest(path=MANIFEST_PATH):
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    names = [e["name"] for e in manifest["photos"]]
    if len(set(names)) != len(names):
        raise PhotoError(f"{path}: an output name is listed twice")
    for e in manifest["photos"]:
        if e["package"] != SHARED and e["package"] not in manifest["packages"]:
            raise PhotoError(f"{path}: {e['name']}: package {e['package']!r} is not under 'packages'")
        if e["package"] != SHARED and e.get("version") != manifest["packages"][e["package"]]:
            raise PhotoError(f"{path}: {e['name']}: version {e.get('version')!r} is not the "
                             f"{manifest['packages'][e['package']]!r} under 'packages'")
        if "crop" in e and not e["name"].endswith(".png"):
            raise PhotoError(f"{path}: {e['name']}: a cropped photo is written as PNG; "
                             "its name must end in .png")
        if e["split"] not in SPLITS:
            raise PhotoError(f"{path}: {e['name']}: split must be one of {SPLITS}; got {e['split']!r}")
    return manifest


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------


def _apt_lists_empty():
    return not glob.glob(os.path.join(APT_LISTS, "*_Packages*"))


def apt_download(package, dest_dir, log=print):
    """`apt-get download PACKAGE` into dest_dir (after `apt-get update` if apt has no lists)."""
    if _apt_lists_empty():
        log("apt has no package lists: running apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
    for attempt in range(2):
        run = subprocess.run(["apt-get", "download", "-q", package], cwd=dest_dir,
                             capture_output=True, text=True)
        if run.returncode == 0:
            break
        if attempt == 0 and "Unable to locate package" in run.stderr:
            log(f"apt-get does not know {package}: running apt-get update")  # stale lists
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            continue
        raise PhotoError(f"apt-get download {package} failed: {run.stderr.strip()}")
    return _find_deb(dest_dir, package)


def deb_dir_download(deb_dir):
    """A `download` that takes already downloaded .debs from deb_dir (no apt, no network)."""

    def download(package, dest_dir, log=print):
        return _find_deb(deb_dir, package)

    return download


def _find_deb(folder, package):
    debs = sorted(glob.glob(os.path.join(folder, f"{package}_*.deb")))
    if not debs:
        raise PhotoError(f"{folder}: no {package}_*.deb")
    if len(debs) > 1:
        raise PhotoError(f"{folder}: several .deb files of {package}: "
                         f"{', '.join(os.path.basename(d) for d in debs)}")
    return debs[0]


def deb_version(deb):
    return subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True, capture_output=True,
                          text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def fetch_photos(output_dir, manifest_path=MANIFEST_PATH, shared_dir=DEFAULT_SHARED_DIR,
                 download=apt_download, overwrite=False, log=print):
    """Writes output_dir/{train,val,demo}/, output_dir/licences/ and output_dir/manifest.json.

    `download(package, dest_dir, log)` returns the path of the package's .deb. Raises PhotoError
    on a package that cannot be had, on files whose SHA-256 differs from the manifest (all of
    them named, after every package was looked at), or on an output folder that already holds
    photos (unless `overwrite`). A file that the package (of another version than the
    manifest's) no longer ships, and that has no shared copy, is reported and skipped. Returns
    the summary written to manifest.json.
    """
    manifest = load_manifest(manifest_path)
    entries = manifest["photos"]
    targets = [os.path.join(output_dir, s) for s in SPLITS] + [os.path.join(output_dir, "manifest.json")]
    if not overwrite and any(os.path.exists(t) and (not os.path.isdir(t) or os.listdir(t)) for t in targets):
        raise PhotoError(f"{output_dir} already holds photos (train/, val/ or manifest.json); "
                         "pass --overwrite to replace them")
    shared_dir = os.path.normpath(shared_dir) if shared_dir else None
    if shared_dir and not os.path.isdir(shared_dir):
        log(f"shared photos folder {shared_dir} not found: continuing with the Debian photos")
        shared_dir = None

    os.makedirs(output_dir, exist_ok=True)
    # Everything is built in a staging folder beside the output and moved in at the end, so a
    # failed run leaves a previous result untouched.
    stage = tempfile.mkdtemp(prefix=".photos-", dir=output_dir)
    try:
        for folder in (*SPLITS, "licences"):
            os.makedirs(os.path.join(stage, folder))
        if shared_dir and os.path.isfile(os.path.join(shared_dir, "README.md")):
            shutil.copyfile(os.path.join(shared_dir, "README.md"),
                            os.path.join(stage, "licences", "shared-README.md"))
        run = _Run(entries, stage, shared_dir, log)
        versions = {}
        packages = manifest["packages"]
        with tempfile.TemporaryDirectory(prefix="hifill-photos-") as work:
            # One package at a time, removed once its photos are out: the unpacked packages
            # together hold about 1.3 GB.
            for i, (package, expected) in enumerate(packages.items(), 1):
                log(f"[{i}/{len(packages)}] fetching {package}")
                root, versions[package] = _unpack(package, expected, work, download, stage, log)
                run.copy([e for e in entries if e["package"] == package], root, versions[package])
                shutil.rmtree(os.path.dirname(root))
        run.copy([e for e in entries if e["package"] == SHARED], None, None)
        if run.changed:
            raise PhotoError(f"{len(run.changed)} file(s) differ from the manifest, so the "
                             f"curated list ({manifest_path}) must be checked again:\n  "
                             + "\n  ".join(run.changed))
        if not run.files:
            raise PhotoError("no photo could be fetched")
        summary = _summary(manifest, run.files, run.missing, versions, shared_dir)
        with open(os.path.join(stage, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1, ensure_ascii=False)
            f.write("\n")
        for name in (*SPLITS, "licences", "manifest.json"):
            target = os.path.join(output_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
            os.rename(os.path.join(stage, name), target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    counts = summary["counts"]
    log(f"Wrote {counts['photos']} of {len(entries)} photos ({counts['train']} train, "
        f"{counts['val']} val, {counts['demo']} demo, {counts['megabytes']:.1f} MB, "
        f"{sum(counts['megapixels'].values()):.1f} megapixels) to {output_dir}; "
        f"{len(run.missing)} missing")
    return summary


def _unpack(package, expected, work, download, stage, log):
    """Downloads and unpacks one package, keeping its copyright file: (root, version)."""
    folder = os.path.join(work, package)
    os.makedirs(folder)
    deb = download(package, folder, log=log)
    version = deb_version(deb)
    if version != expected:
        log(f"  {package} is version {version}; the manifest was made from {expected}: files "
            "it no longer ships are reported as missing, files that changed stop the run")
    root = os.path.join(folder, "root")
    subprocess.run(["dpkg", "-x", deb, root], check=True)
    if os.path.dirname(deb) == folder:
        os.remove(deb)  # only a .deb this run downloaded, never one of --deb_dir
    copyright_file = os.path.join(root, "usr", "share", "doc", package, "copyright")
    if os.path.isfile(copyright_file):
        shutil.copyfile(copyright_file, os.path.join(stage, "licences", f"{package}.copyright"))
    return root, version


class _Run:
    """The photos written so far, those missing and those whose SHA-256 changed."""

    def __init__(self, entries, stage, shared_dir, log):
        self.total, self.stage, self.shared_dir, self.log = len(entries), stage, shared_dir, log
        self.files, self.missing, self.changed = [], [], []

    def copy(self, entries, root, version):
        opened = {}  # container path -> its reader, so each container is read once
        for entry in entries:
            n = f"[{len(self.files) + len(self.missing) + len(self.changed) + 1}/{self.total}]"
            data, source, origin = _read(entry, root, self.shared_dir, opened)
            if data is None and source is None:
                self.missing.append(f"{entry['package']}:{entry['path']}")
                self.log(f"  {n} MISSING {entry['name']}: {origin}")
                continue
            got = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(source)
            if got != entry["sha256"]:
                self.changed.append(f"{source or entry['package'] + ':' + entry['path']} "
                                    f"({entry['name']}): SHA-256 {got} differs from the "
                                    f"manifest's {entry['sha256']}")
                self.log(f"  {n} CHANGED {entry['name']}")
                continue
            dest = os.path.join(entry["split"], entry["name"])
            written = os.path.join(self.stage, dest)
            _write(entry, data, source, written)
            record = {"file": dest, **{k: entry[k] for k in (
                "split", "package", "path", "author", "licence", "size")},
                "version": version if origin == entry["package"] else None,
                "bytes": os.path.getsize(written),
                "sha256": got, "fetched_from": origin}
            if "crop" in entry:
                record.update(sha256=sha256_file(written), source_sha256=got, crop=entry["crop"])
            self.files.append(record)
            self.log(f"  {n} {dest} ({entry['size']}, {record['bytes'] / 1e6:.1f} MB, {origin})")


def _read(entry, root, shared_dir, opened):
    """(bytes or None, file or None, where it came from); both None when it cannot be had.

    A plain file is returned as a path (hashed and copied without reading it whole), a
    container member as bytes.
    """
    shared = entry.get("shared_file") if entry["package"] != SHARED else entry["path"]
    why = None
    if entry["package"] != SHARED:
        outer, _, member = entry["path"].partition("::")
        path = os.path.join(root, outer)
        if not os.path.isfile(path):  # through a symlink too: dpkg -x keeps the package's links
            why = f"{entry['package']} has no {outer}"
        elif not member:
            return None, path, entry["package"]
        else:
            try:
                if path not in opened:
                    opened[path] = containers.open_container(path)
                return opened[path](member), None, entry["package"]
            except containers.ContainerError as error:
                why = str(error)
    if shared and shared_dir and os.path.isfile(os.path.join(shared_dir, shared)):
        return None, os.path.join(shared_dir, shared), f"shared/{shared}"
    where = "the shared folder" if entry["package"] == SHARED else why
    if shared:
        where += f" and {shared} is not in the shared folder"
    return None, None, where


def _write(entry, data, source, dest):
    if "crop" in entry:
        from PIL import Image  # only for the cropped photos; the rest are copied as bytes

        x, y, w, h = entry["crop"]
        with Image.open(io.BytesIO(data) if data is not None else source) as image:
            image.crop((x, y, x + w, y + h)).save(dest, format="PNG")
    elif data is not None:
        with open(dest, "wb") as f:
            f.write(data)
    else:
        shutil.copyfile(source, dest)


def _summary(manifest, files, missing, versions, shared_dir):
    by_package = {}
    for f in files:
        counts = by_package.setdefault(f["package"], dict.fromkeys(SPLITS, 0))
        counts[f["split"]] += 1
    total = sum(f["bytes"] for f in files)
    counts = {"photos": len(files), **{s: sum(f["split"] == s for f in files) for s in SPLITS}}
    megapixels = {s: round(sum(_pixels(f["size"]) for f in files if f["split"] == s) / 1e6, 1)
                  for s in SPLITS}
    return {
        "description": "Photographs written by hifill_tf.data.photos from hifill_tf/data/photo_manifest.json.",
        "package_versions": versions,
        "shared_dir": shared_dir,
        "counts": {**counts, "megabytes": round(total / 1e6, 1), "megapixels": megapixels,
                   "by_package": by_package, "dropped_in_manifest": len(manifest.get("dropped", []))},
        "missing": missing,
        "files": files,
    }


def _pixels(size):
    width, height = (int(v) for v in size.split("x"))
    return width * height


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _define_flags():
    # Defined only when run as a program, so importing the library adds no global flags.
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Folder to write train/, val/, licences/ and manifest.json to.")
    flags.DEFINE_string("shared_dir", DEFAULT_SHARED_DIR,
                        "The project's shared photos (byte-identical copies of some plasma wallpapers, "
                        "used when a package lacks one); a missing folder is reported and skipped.")
    flags.DEFINE_string("deb_dir", None,
                        "Take the .deb files from this folder instead of running apt-get download "
                        "(one PACKAGE_*.deb per package).")
    flags.DEFINE_string("manifest", MANIFEST_PATH, "The curated list of photos (with SHA-256 and split).")
    flags.DEFINE_bool("overwrite", False, "Replace the train/, val/ and manifest.json of an earlier run.")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"photos: unexpected arguments {argv[1:]}")
    download = deb_dir_download(FLAGS.deb_dir) if FLAGS.deb_dir else apt_download
    try:
        fetch_photos(FLAGS.output_dir, manifest_path=FLAGS.manifest, shared_dir=FLAGS.shared_dir,
                     download=download, overwrite=FLAGS.overwrite,
                     log=lambda line: print(line, flush=True))
    except (PhotoError, OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"photos: {error}")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
