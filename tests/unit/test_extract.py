"""Safe unpacking on the server side: zip slip, links, broken and oversized archives (archive.md §5)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from servekit.archiver.extract import link_model_directory, remove_model_directory, unpack_archive
from servekit.errors import InvalidModelError

# -- helpers ---------------------------------------------------------------------------------


def make_zip(
    path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def tar_file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def make_tgz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


def assert_nothing_left(models_root: Path, tmp_path: Path) -> None:
    assert list(models_root.iterdir()) == []
    assert not (tmp_path / "evil").exists()


# -- good archives ---------------------------------------------------------------------------


def test_unpack_zip(tmp_path: Path, models_root: Path) -> None:
    archive = make_zip(
        tmp_path / "m.mar",
        [("model.py", b"code"), ("tok/merges.txt", b"h e"), ("empty/", b""), ("MAR-INF/MANIFEST.json", b"{}")],
    )
    target = unpack_archive(archive, models_root)
    assert target.parent == models_root
    assert len(target.name) == 32 and int(target.name, 16) >= 0
    assert files_under(target) == {"model.py": b"code", "tok/merges.txt": b"h e", "MAR-INF/MANIFEST.json": b"{}"}
    assert (target / "empty").is_dir()
    assert stat.S_IMODE(models_root.stat().st_mode) == 0o700
    assert sorted(p.name for p in models_root.iterdir()) == [target.name]  # no .download left
    assert archive.exists()  # the archive in the model store stays


def test_unpack_stored_zip(tmp_path: Path, models_root: Path) -> None:
    archive = make_zip(tmp_path / "m.mar", [("a.bin", b"\0" * 1000)], zipfile.ZIP_STORED)
    assert files_under(unpack_archive(archive, models_root)) == {"a.bin": b"\0" * 1000}


def test_unpack_tgz_strips_first_component(tmp_path: Path, models_root: Path) -> None:
    top = tarfile.TarInfo("m")
    top.type = tarfile.DIRTYPE
    sub = tarfile.TarInfo("m/sub")
    sub.type = tarfile.DIRTYPE
    archive = make_tgz(
        tmp_path / "m.tar.gz",
        [(top, None), tar_file("m/model.py", b"code"), (sub, None), tar_file("m/sub/x.txt", b"x"),
         tar_file("./dot.txt", b"d"), tar_file("README", b"kept")],
    )  # fmt: skip
    target = unpack_archive(archive, models_root)
    assert files_under(target) == {"model.py": b"code", "sub/x.txt": b"x", "dot.txt": b"d", "README": b"kept"}
    assert sorted(p.name for p in target.iterdir()) == ["README", "dot.txt", "model.py", "sub"]


def test_any_name_not_ending_in_mar_is_read_as_tgz(tmp_path: Path, models_root: Path) -> None:
    archive = make_tgz(tmp_path / "model.zip", [tar_file("m/a.txt", b"a")])
    assert files_under(unpack_archive(archive, models_root)) == {"a.txt": b"a"}


# -- malicious archives ----------------------------------------------------------------------


def symlink_zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("../evil", "Detected Zip Slip vulnerability: ../evil"),
        ("a/../../evil", "Detected Zip Slip vulnerability: a/../../evil"),
        ("/tmp/evil", "Detected Zip Slip vulnerability: /tmp/evil"),
        ("..\\evil", "Detected Zip Slip vulnerability: ..\\evil"),
        ("C:/evil", "Detected Zip Slip vulnerability: C:/evil"),
        (symlink_zip_entry("link"), "Archive entry is a link, refused: link"),
    ],
)
def test_malicious_zip_is_refused(
    tmp_path: Path, models_root: Path, entry: zipfile.ZipInfo | str, message: str
) -> None:
    archive = make_zip(tmp_path / "bad.mar", [("good.txt", b"ok"), (entry, b"/etc/passwd")])
    with pytest.raises(InvalidModelError) as info:
        unpack_archive(archive, models_root)
    assert info.value.message == message
    assert info.value.status == 400
    assert_nothing_left(models_root, tmp_path)


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (tar_file("m/../../evil"), "Detected Zip Slip vulnerability: m/../../evil"),
        (tar_file("../evil"), "Detected Zip Slip vulnerability: ../evil"),
        (tar_file("/tmp/evil"), "Detected Zip Slip vulnerability: /tmp/evil"),
        (tar_special("m/link", tarfile.SYMTYPE, "/etc/passwd"), "Archive entry is a link, refused: m/link"),
        (tar_special("m/hard", tarfile.LNKTYPE, "m/good.txt"), "Archive entry is a link, refused: m/hard"),
        (tar_special("m/fifo", tarfile.FIFOTYPE), "Archive entry is not a regular file or directory, refused: m/fifo"),
        (tar_special("m/dev", tarfile.CHRTYPE), "Archive entry is not a regular file or directory, refused: m/dev"),
    ],
)
def test_malicious_tar_is_refused(
    tmp_path: Path, models_root: Path, member: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    archive = make_tgz(tmp_path / "bad.tar.gz", [tar_file("m/good.txt", b"ok"), member])
    with pytest.raises(InvalidModelError) as info:
        unpack_archive(archive, models_root)
    assert info.value.message == message
    assert_nothing_left(models_root, tmp_path)


# -- broken and oversized archives -----------------------------------------------------------


def real_mar(tmp_path: Path) -> bytes:
    path = make_zip(tmp_path / "real.mar", [("weights.bin", os.urandom(64 * 1024)), ("model.py", b"code")])
    return path.read_bytes()


def test_truncated_mar(tmp_path: Path, models_root: Path) -> None:
    data = real_mar(tmp_path)
    archive = tmp_path / "cut.mar"
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelError, match=r"^Failed to unpack model archive cut\.mar: File is not a zip file$"):
        unpack_archive(archive, models_root)
    assert list(models_root.iterdir()) == []


def test_corrupted_mar_data_fails_crc(tmp_path: Path, models_root: Path) -> None:
    archive = make_zip(tmp_path / "crc.mar", [("a.bin", b"A" * 4096)], zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF  # inside the stored file data
    archive.write_bytes(bytes(data))
    with pytest.raises(InvalidModelError, match=r"^Failed to unpack model archive crc\.mar: Bad CRC-32"):
        unpack_archive(archive, models_root)
    assert list(models_root.iterdir()) == []


def test_truncated_tgz(tmp_path: Path, models_root: Path) -> None:
    full = make_tgz(tmp_path / "full.tar.gz", [tar_file("m/weights.bin", os.urandom(256 * 1024))]).read_bytes()
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(full[: len(full) // 2])
    with pytest.raises(InvalidModelError, match=r"^Failed to unpack model archive cut\.tar\.gz: "):
        unpack_archive(archive, models_root)
    assert list(models_root.iterdir()) == []


@pytest.mark.parametrize("name", ["random.mar", "random.tar.gz"])
def test_random_bytes(tmp_path: Path, models_root: Path, name: str) -> None:
    archive = tmp_path / name
    archive.write_bytes(os.urandom(4096))
    with pytest.raises(InvalidModelError, match=rf"^Failed to unpack model archive {name}: \S"):
        unpack_archive(archive, models_root)
    assert list(models_root.iterdir()) == []


def test_missing_archive(tmp_path: Path, models_root: Path) -> None:
    with pytest.raises(
        InvalidModelError, match=r"^Failed to unpack model archive gone\.mar: No such file or directory$"
    ):
        unpack_archive(tmp_path / "gone.mar", models_root)
    assert list(models_root.iterdir()) == []


def test_oversized_zip_is_refused(tmp_path: Path, models_root: Path) -> None:
    archive = make_zip(tmp_path / "bomb.mar", [("zeros.bin", b"\0" * 100_000)])
    assert archive.stat().st_size < 1000
    with pytest.raises(
        InvalidModelError, match=r"^Model archive bomb\.mar is too large: it unpacks to more than 50000 bytes"
    ):
        unpack_archive(archive, models_root, max_unpacked_bytes=50_000)
    assert list(models_root.iterdir()) == []


def test_oversized_tgz_is_refused(tmp_path: Path, models_root: Path) -> None:
    archive = make_tgz(
        tmp_path / "bomb.tar.gz", [tar_file("m/a.bin", b"\0" * 40_000), tar_file("m/b.bin", b"\0" * 40_000)]
    )
    with pytest.raises(InvalidModelError, match="is too large"):
        unpack_archive(archive, models_root, max_unpacked_bytes=50_000)
    assert list(models_root.iterdir()) == []


# -- directories served in place and cleanup --------------------------------------------------


def test_link_model_directory(tmp_path: Path, models_root: Path) -> None:
    source = tmp_path / "densenet161"
    source.mkdir()
    (source / "model.py").write_text("code")
    (source / "extra").mkdir()
    link = link_model_directory(source, models_root)
    assert link.name == "densenet161"
    assert link.is_symlink() and link.resolve() == source.resolve()
    assert link.parent.parent == models_root
    assert (link / "model.py").read_text() == "code"


def test_link_single_inner_directory(tmp_path: Path, models_root: Path) -> None:
    source = tmp_path / "unpacked"
    (source / "densenet161").mkdir(parents=True)
    (source / "densenet161" / "model.py").write_text("code")
    link = link_model_directory(source, models_root)
    assert link.name == "unpacked"
    assert link.resolve() == (source / "densenet161").resolve()
    assert (link / "model.py").read_text() == "code"


def test_link_missing_directory(tmp_path: Path, models_root: Path) -> None:
    with pytest.raises(InvalidModelError, match="Model directory not found"):
        link_model_directory(tmp_path / "nope", models_root)


def test_remove_linked_directory_keeps_the_source(tmp_path: Path, models_root: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.py").write_text("code")
    link = link_model_directory(source, models_root)
    remove_model_directory(link, models_root)
    assert list(models_root.iterdir()) == []
    assert (source / "model.py").read_text() == "code"


def test_remove_unpacked_directory(tmp_path: Path, models_root: Path) -> None:
    target = unpack_archive(make_zip(tmp_path / "m.mar", [("a/b.txt", b"b")]), models_root)
    other = unpack_archive(make_zip(tmp_path / "n.mar", [("c.txt", b"c")]), models_root)
    remove_model_directory(target, models_root)
    assert list(models_root.iterdir()) == [other]
    remove_model_directory(target, models_root)  # already gone: nothing to do


@pytest.mark.parametrize("outside", ["elsewhere", "models", "models/../elsewhere"])
def test_remove_refuses_paths_outside_the_models_root(tmp_path: Path, models_root: Path, outside: str) -> None:
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    models_root.mkdir()
    with pytest.raises(ValueError, match="refusing to delete"):
        remove_model_directory(tmp_path / outside, models_root)
    assert victim.is_dir() and models_root.is_dir()


def test_remove_refuses_a_symlink_planted_in_the_models_root(tmp_path: Path, models_root: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    models_root.mkdir()
    (models_root / "abc").symlink_to(victim)
    with pytest.raises(ValueError, match="is a symlink"):
        remove_model_directory(models_root / "abc" / "keep.txt", models_root)
    assert (victim / "keep.txt").read_text() == "keep"
