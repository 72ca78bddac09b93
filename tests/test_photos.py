"""hifill_tf.data.photos: fetching, checking and splitting the training photographs.

Runs without network or apt: the packages are tiny .debs built here with dpkg-deb, handed to
the module through its `download` callable (or --deb_dir on the command line). The committed
manifest is checked against the project's list of candidate photos where that is present.
"""

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hifill_tf.data import photos
from shared import rcc_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSIONS = {"pkg-a": "1.0", "pkg-b": "2.0"}


def _image_bytes(seed, fmt="JPEG", size=(24, 16)):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def _build_deb(folder, package, version, files):
    """A .deb of `package` holding files {path inside the package: bytes}, plus its copyright."""
    root = folder.parent / "roots" / f"{package}-{version}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test photos\n")
    files = {f"usr/share/doc/{package}/copyright": b"Files: *\nLicense: CC0-1.0\n", **files}
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    deb = folder / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def _entry(name, package, path, data, split, **extra):
    w, h = Image.open(io.BytesIO(data)).size
    version = {"version": VERSIONS[package]} if package in VERSIONS else {}
    return {"name": name, "split": split, "package": package, **version, "path": path,
            "size": f"{w}x{h}", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "author": "A. Author", "licence": "CC0-1.0", **extra}


@pytest.fixture
def world(tmp_path):
    """Two packages (one with an illustration that is not listed, one with photos inside a Qt
    resource file and a texture atlas), a shared folder, a manifest."""
    img = {k: _image_bytes(k) for k in range(5)}
    img[2] = _image_bytes(2, "PNG")
    img[5] = _image_bytes(5, "WEBP")
    img[6] = _image_bytes(6, "PNG", size=(40, 30))  # an atlas: the photo is its top-left 24x16
    debs = tmp_path / "debs"
    debs.mkdir()
    _build_deb(debs, "pkg-a", "1.0", {"usr/share/pics/one.jpg": img[0], "usr/share/pics/two.png": img[2],
                                      "usr/share/pics/drawing.png": _image_bytes(9, "PNG")})
    _build_deb(debs, "pkg-b", "2.0", {"usr/share/b/three.jpg": img[3], "usr/share/b/demo.jpg": img[1],
                                      "usr/share/b/res.rcc": rcc_file({"/img/five.webp": (img[5], True),
                                                                   "/img/logo.png": (img[2], False)}),
                                      "usr/share/b/atlas.png": img[6]})
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "one.jpg").write_bytes(img[0])  # the same bytes as pkg-a's one.jpg
    (shared / "four.jpg").write_bytes(img[4])
    (shared / "README.md").write_text("| four.jpg | Someone | CC0-1.0 |\n")
    manifest = {
        "packages": {"pkg-a": "1.0", "pkg-b": "2.0"},
        "photos": [
            _entry("a-one.jpg", "pkg-a", "usr/share/pics/one.jpg", img[0], "train", shared_file="one.jpg"),
            _entry("a-two.png", "pkg-a", "usr/share/pics/two.png", img[2], "val"),
            _entry("b-three.jpg", "pkg-b", "usr/share/b/three.jpg", img[3], "val"),
            _entry("shared-four.jpg", "shared", "four.jpg", img[4], "train"),
            _entry("b-demo.jpg", "pkg-b", "usr/share/b/demo.jpg", img[1], "demo"),
            _entry("b-five.webp", "pkg-b", "usr/share/b/res.rcc::/img/five.webp", img[5], "train"),
            {**_entry("b-six.png", "pkg-b", "usr/share/b/atlas.png", img[6], "train"),
             "crop": [0, 0, 24, 16], "size": "24x16"},
        ],
        "dropped": [{"package": "pkg-a", "path": "usr/share/pics/drawing.png", "reason": "drawing"}],
    }
    manifest_path = tmp_path / "photo_manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    return {"tmp": tmp_path, "debs": debs, "shared": shared, "manifest": manifest_path, "img": img}


def _fetch(world, out=None, **kwargs):
    lines = []
    kwargs.setdefault("shared_dir", str(world["shared"]))
    kwargs.setdefault("download", photos.deb_dir_download(str(world["debs"])))
    out = out or world["tmp"] / "out"
    summary = photos.fetch_photos(str(out), manifest_path=str(world["manifest"]), log=lines.append,
                                  **kwargs)
    return summary, out, "\n".join(lines)


def test_fetch_keeps_only_listed_files_and_splits(world):
    summary, out, log = _fetch(world)
    assert sorted(os.listdir(out / "train")) == ["a-one.jpg", "b-five.webp", "b-six.png",
                                                 "shared-four.jpg"]
    assert sorted(os.listdir(out / "val")) == ["a-two.png", "b-three.jpg"]  # drawing.png not listed
    assert (out / "val" / "a-two.png").read_bytes() == world["img"][2]  # copied, not re-encoded
    assert (out / "train" / "b-five.webp").read_bytes() == world["img"][5]  # inflated from the rcc
    atlas = np.asarray(Image.open(io.BytesIO(world["img"][6])))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "train" / "b-six.png")), atlas[:16, :24])
    assert sorted(os.listdir(out / "licences")) == ["pkg-a.copyright", "pkg-b.copyright",
                                                    "shared-README.md"]
    written = json.loads((out / "manifest.json").read_text())
    assert written == summary
    assert written["counts"]["train"] == 4 and written["counts"]["val"] == 2
    assert written["counts"]["demo"] == 1 and os.listdir(out / "demo") == ["b-demo.jpg"]
    assert written["counts"]["by_package"]["pkg-b"] == {"train": 2, "val": 1, "demo": 1}
    assert written["counts"]["megapixels"]["train"] == round((3 * 24 * 16 + 24 * 16) / 1e6, 1)
    assert written["package_versions"] == {"pkg-a": "1.0", "pkg-b": "2.0"}
    assert not written["missing"]
    by_file = {f["file"]: f for f in written["files"]}
    assert by_file["train/a-one.jpg"]["fetched_from"] == "pkg-a"  # the package wins over shared
    assert by_file["train/shared-four.jpg"]["fetched_from"] == "shared/four.jpg"
    assert by_file["train/b-five.webp"]["version"] == "2.0"
    six = by_file["train/b-six.png"]  # the checked hash is the atlas's; the PNG's is recorded
    assert six["source_sha256"] == hashlib.sha256(world["img"][6]).hexdigest() != six["sha256"]
    assert six["crop"] == [0, 0, 24, 16] and six["bytes"] == (out / "train" / "b-six.png").stat().st_size
    for f in written["files"]:
        assert f["file"].startswith(f["split"] + "/")
        assert f["author"] and f["licence"]
        assert photos.sha256_file(out / f["file"]) == f["sha256"]
    assert "Wrote 7 of 7 photos (4 train, 2 val, 1 demo" in log
    assert not [n for n in os.listdir(out) if n.startswith(".photos-")]  # staging removed


def test_changed_files_fail_naming_each(world):
    # Every package is looked at before failing, so one run names all the changed files.
    tampered = world["img"][2][:-8] + b"\0" * 8
    _build_deb(world["debs"], "pkg-a", "1.0", {"usr/share/pics/one.jpg": world["img"][0],
                                               "usr/share/pics/two.png": tampered})
    _build_deb(world["debs"], "pkg-b", "2.0", {
        "usr/share/b/three.jpg": world["img"][3], "usr/share/b/demo.jpg": world["img"][1],
        "usr/share/b/res.rcc": rcc_file({"/img/five.webp": (world["img"][5][::-1], True)}),
        "usr/share/b/atlas.png": world["img"][6]})
    with pytest.raises(photos.PhotoError) as error:
        _fetch(world)
    message = str(error.value)
    assert message.startswith("2 file(s) differ from the manifest")
    assert re.search(r"usr/share/pics/two\.png \(a-two\.png\): SHA-256 [0-9a-f]{64} differs", message)
    assert "pkg-b:usr/share/b/res.rcc::/img/five.webp (b-five.webp): SHA-256" in message
    out = world["tmp"] / "out"
    assert not (out / "train").exists() and not (out / "manifest.json").exists()


def test_missing_shared_folder_is_reported(world):
    summary, out, log = _fetch(world, shared_dir=str(world["tmp"] / "nowhere"))
    assert "nowhere not found: continuing with the Debian photos" in log
    assert sorted(os.listdir(out / "train")) == ["a-one.jpg", "b-five.webp", "b-six.png"]
    assert summary["missing"] == ["shared:four.jpg"]
    assert "Wrote 6 of 7 photos" in log


def test_file_gone_from_new_package_version(world):
    # pkg-a 1.1 no longer ships one.jpg: the shared copy stands in; without it the photo is
    # reported missing and the rest is still written.
    for deb in world["debs"].glob("pkg-a_*.deb"):
        deb.unlink()
    _build_deb(world["debs"], "pkg-a", "1.1", {"usr/share/pics/two.png": world["img"][2]})
    summary, out, log = _fetch(world)
    assert "pkg-a is version 1.1; the manifest was made from 1.0" in log
    assert {f["file"]: f["fetched_from"] for f in summary["files"]}["train/a-one.jpg"] == "shared/one.jpg"

    (world["shared"] / "one.jpg").unlink()
    summary, out, log = _fetch(world, out=world["tmp"] / "out2")
    assert summary["missing"] == ["pkg-a:usr/share/pics/one.jpg"]
    assert "MISSING a-one.jpg: pkg-a has no usr/share/pics/one.jpg" in log
    assert "a-one.jpg" not in os.listdir(out / "train")

    # pkg-b 2.1's resource file no longer holds five.webp: reported the same way.
    (world["debs"] / "pkg-b_2.0_all.deb").unlink()
    _build_deb(world["debs"], "pkg-b", "2.1", {
        "usr/share/b/three.jpg": world["img"][3], "usr/share/b/demo.jpg": world["img"][1],
        "usr/share/b/res.rcc": rcc_file({"/img/logo.png": (world["img"][2], False)}),
        "usr/share/b/atlas.png": world["img"][6]})
    summary, out, log = _fetch(world, out=world["tmp"] / "out3")
    assert summary["missing"] == ["pkg-a:usr/share/pics/one.jpg", "pkg-b:usr/share/b/res.rcc::/img/five.webp"]
    assert re.search(r"MISSING b-five\.webp: \S+/usr/share/b/res\.rcc::/img/five\.webp: no such member", log)
    assert sorted(os.listdir(out / "train")) == ["b-six.png", "shared-four.jpg"]


def test_missing_package_fails_and_existing_output_needs_overwrite(world):
    (world["debs"] / "pkg-b_2.0_all.deb").unlink()
    with pytest.raises(photos.PhotoError, match=r"no pkg-b_\*\.deb"):
        _fetch(world)
    _build_deb(world["debs"], "pkg-b", "2.0", {"usr/share/b/three.jpg": world["img"][3]})
    _, out, _ = _fetch(world)
    with pytest.raises(photos.PhotoError, match="already holds photos"):
        _fetch(world)
    (out / "train" / "stale.jpg").write_bytes(b"old")
    _fetch(world, overwrite=True)
    assert "stale.jpg" not in os.listdir(out / "train")


def test_command_line_with_deb_dir(world):
    out = world["tmp"] / "cli"
    # `python -m hifill_tf.data.photos`, reporting whether TensorFlow was imported: fetching
    # and checking files needs none (seconds of start-up).
    as_module = ("import runpy, sys\nsys.argv[0] = 'photos'\ncode = 0\ntry:\n"
                 "    runpy.run_module('hifill_tf.data.photos', run_name='__main__', alter_sys=True)\n"
                 "except SystemExit as exit:\n    code = exit.code\n"
                 "print('exit', code, 'tensorflow imported:', 'tensorflow' in sys.modules)\n")
    run = subprocess.run(
        [sys.executable, "-c", as_module, f"--output_dir={out}",
         f"--deb_dir={world['debs']}", f"--shared_dir={world['shared']}",
         f"--manifest={world['manifest']}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr
    assert "[1/2] fetching pkg-a" in run.stdout and "Wrote 7 of 7 photos" in run.stdout
    assert run.stdout.strip().splitlines()[-1] in ("exit 0 tensorflow imported: False",
                                                   "exit None tensorflow imported: False")
    assert len(json.loads((out / "manifest.json").read_text())["files"]) == 7


# The validation photos of the three-package manifest: they stay in val so that the learning
# curve of a run stays comparable with earlier runs on them.
EARLIER_VAL = ["lomiri-Wine_by_Jakkub_Mede.jpg", "lomiri-life_by_Aitzol_Berasategi.jpg",
               "lomiri-picosdeeuropa_by_Aitzol_Berasategi.jpg", "palapeli-castle-maintenon.jpg",
               "palapeli-citrus-fruits.jpg", "palapeli-european-honey-bee.jpg"]
# The project's list of candidate photos (one row per photograph found in a Debian package).
SOURCES_CSV = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "photo-sources.csv"))


def test_committed_manifest_is_consistent():
    manifest = photos.load_manifest()
    entries = manifest["photos"]
    by_name = {e["name"]: e for e in entries}
    val = [e for e in entries if e["split"] == "val"]
    assert len(val) >= 30 and len({e["package"] for e in val}) >= 4
    assert [by_name[n]["split"] for n in EARLIER_VAL] == ["val"] * len(EARLIER_VAL)
    # The demo photo (examples/) is neither trained on nor part of the validation set.
    demo = [e for e in entries if e["split"] == "demo"]
    assert [e["name"] for e in demo] == ["lomiri-Bridge_by_Sander_Klootwijk.jpg"]
    bundled = os.path.join(REPO, "examples", "bridge-4352x2448.jpg")
    assert photos.sha256_file(bundled) == demo[0]["sha256"]
    # Photos the previous default model was trained on (the shared ones) cannot validate it.
    assert not [e for e in val if e.get("shared_file") or e["package"] == photos.SHARED]
    shas = [e["sha256"] for e in entries]
    assert len(set(shas)) == len(shas)
    names = [e["name"] for e in entries]
    assert len(set(names)) == len(names)
    for e in entries:
        assert e["author"].strip() and e["licence"].strip(), e["name"]
        assert len(e["sha256"]) == 64 and e["bytes"] > 0, e["name"]
        w, h = (int(v) for v in e["size"].split("x"))
        assert w > 0 and h > 0, e["name"]
        assert e["name"].startswith(manifest["short_names"][e["package"]] + "-"), e["name"]
        # Training lists files by these extensions (data.files.TRAINING_EXTENSIONS).
        assert e["name"].lower().endswith((".jpg", ".jpeg", ".png", ".webp")), e["name"]
    assert set(manifest["short_names"]) == set(manifest["packages"])
    assert len(set(manifest["short_names"].values())) == len(manifest["packages"])
    assert all(d["reason"] for d in manifest["dropped"])


@pytest.mark.skipif(not os.path.isfile(SOURCES_CSV), reason=f"{SOURCES_CSV} is not on this machine")
def test_manifest_covers_every_candidate_photo():
    """Each row of photo-sources.csv is a manifest photo or a dropped entry with a reason.

    A row is the manifest photo with its SHA-256 or path; the CSV lists a derived PNG for the
    .edj and .pzl containers (one photo each), whose photo is the one read from that container.
    """
    manifest = photos.load_manifest()
    with open(SOURCES_CSV, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_sha = {e["sha256"]: e for e in manifest["photos"]}
    by_path = {(e["package"], e["path"]): e for e in manifest["photos"]}
    by_container = {(e["package"], e["path"].split("::")[0]): e for e in manifest["photos"]
                    if e["path"].split("::")[0].endswith((".edj", ".pzl"))}
    dropped = {(d["package"], d["path"]): d for d in manifest["dropped"]}
    found = set()
    for row in rows:
        path = row["path"].lstrip("/")
        key = (row["package"], path)
        entry = (by_sha.get(row["sha256"]) or by_path.get(key)
                 or by_container.get((row["package"], path.split("::")[0])))
        assert bool(entry) != bool(dropped.get(key)), f"{key}: listed {'twice' if entry else 'nowhere'}"
        if entry:
            assert entry["package"] == row["package"] and entry["name"] not in found, key
            assert entry["size"] == f"{row['width']}x{row['height']}", key
            found.add(entry["name"])
        else:
            assert dropped[key]["reason"].strip(), key
    assert len(rows) == 480 and len(found) == 446
    # Only plasma ColorfulCups, trained on before the CSV existed, is not one of its rows.
    assert sorted({e["name"] for e in manifest["photos"]} - found) == ["plasma-colorfulcups.jpg"]
