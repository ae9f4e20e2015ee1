"""Data sets (gansearch.data): the paper's splits, file layouts, checks (a gzip that inflates past
its standard size too), download, TFD, the Arrow cache and the digest of its keys."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import re
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from gansearch import data as data_module
from gansearch.data import cache_dir, idx, load_dataset, resolve_data_dir
from gansearch.data.cache import cache_key
from gansearch.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def mnist_copy(mnist_dir: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the gzipped MNIST files."""
    target = tmp_path / "mnist-copy"
    target.mkdir()
    for path in idx.find_files(idx.MNIST, mnist_dir).values():
        shutil.copy(path, target / path.name)
    return target


def _link_all_but(source_dir: Path, target: Path, role: str) -> Path:
    """Symlink the MNIST files into `target` except `role`, which the caller writes."""
    target.mkdir(parents=True, exist_ok=True)
    for other, path in idx.find_files(idx.MNIST, source_dir).items():
        if other != role:
            (target / path.name).symlink_to(path)
    return target


def test_mnist_splits_as_the_paper(mnist_dir):
    data = load_dataset("mnist", mnist_dir)
    assert data.train.shape == (50_000, 784) and data.valid.shape == (10_000, 784)
    assert data.test.shape == (10_000, 784) and data.image_shape == (28, 28)
    for split in (data.train, data.valid, data.test):
        assert split.dtype == np.float32 and split.min() == 0.0 and split.max() == 1.0
    raw = idx.decode_idx(
        Path("train"), gzip.decompress((mnist_dir / "train-images-idx3-ubyte.gz").read_bytes())
    )
    np.testing.assert_array_equal(
        data.train[[0, 49_999]], (raw[[0, 49_999]].reshape(2, -1) / 255.0).astype(np.float32)
    )
    np.testing.assert_array_equal(
        data.valid[[0, 9_999]], (raw[[50_000, 59_999]].reshape(2, -1) / 255.0).astype(np.float32)
    )
    train_and_valid = np.concatenate([data.train_labels, data.valid_labels])
    assert np.bincount(train_and_valid).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(data.test_labels).tolist() == MNIST_TEST_COUNTS


def test_every_mnist_file_matches_its_standard_checksum(mnist_dir):
    paths = idx.find_files(idx.MNIST, mnist_dir)
    for role, spec in idx.MNIST.files.items():
        idx.verify(paths[role], spec, gzip.decompress(paths[role].read_bytes()))


def test_uncompressed_torchvision_layout(mnist_dir, tmp_path):
    raw_dir = tmp_path / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    for path in idx.find_files(idx.MNIST, mnist_dir).values():
        (raw_dir / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    plain = load_dataset("mnist", tmp_path, download=False)
    np.testing.assert_array_equal(plain.test, load_dataset("mnist", mnist_dir).test)


def test_mnist_subfolder_layout(mnist_dir, tmp_path):
    (tmp_path / "mnist").symlink_to(mnist_dir, target_is_directory=True)
    assert load_dataset("mnist", tmp_path, download=False).valid.shape == (10_000, 784)


def test_second_load_reads_the_memory_mapped_cache(mnist_copy, monkeypatch):
    first = load_dataset("mnist", mnist_copy)
    assert list((cache_dir() / "arrow").glob("mnist-*/COMPLETE"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the IDX files again instead of reading the cache")

    monkeypatch.setattr(idx, "read_source", no_decoding)
    second = load_dataset("mnist", mnist_copy)
    assert not second.train.flags.writeable and not second.train.flags.owndata
    np.testing.assert_array_equal(second.train, first.train)
    np.testing.assert_array_equal(second.test_labels, first.test_labels)


def test_replaced_source_file_rebuilds_the_cache(mnist_copy, monkeypatch):
    load_dataset("mnist", mnist_copy)
    calls = []
    real = idx.read_source
    monkeypatch.setattr(idx, "read_source", lambda *a: calls.append(1) or real(*a))
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes())  # same content, new modification time
    load_dataset("mnist", mnist_copy)
    assert calls == [1]


def test_corrupt_cache_is_rebuilt(mnist_copy, capsys):
    first = load_dataset("mnist", mnist_copy)
    expected = np.array(first.test)
    del first
    (_cached_entry(mnist_copy) / "test_images.arrow").write_bytes(b"garbage")
    again = load_dataset("mnist", mnist_copy)
    assert "rebuilding unreadable cache" in capsys.readouterr().err
    np.testing.assert_array_equal(again.test, expected)


def _cached_entry(mnist_copy: Path) -> Path:
    sources = [mnist_copy / (f.name + ".gz") for f in idx.MNIST.files.values()]
    return cache_dir() / "arrow" / cache_key("mnist", sources)


def test_a_flipped_float_in_the_cache_is_caught_and_rebuilt(mnist_copy, capsys):
    expected = np.array(load_dataset("mnist", mnist_copy).test)
    path = _cached_entry(mnist_copy) / "test_images.arrow"
    raw = bytearray(path.read_bytes())
    body = raw.index(np.float32(expected.reshape(-1)[expected.reshape(-1) > 0][0]).tobytes())
    raw[body : body + 4] = np.float32(np.nan).tobytes()  # one pixel becomes NaN
    path.write_bytes(bytes(raw))
    again = load_dataset("mnist", mnist_copy)
    err = capsys.readouterr().err
    assert "rebuilding unreadable cache" in err and "not pixels in [0, 1]" in err
    np.testing.assert_array_equal(again.test, expected)


def test_a_pixel_changed_within_range_in_the_cache_fails_its_checksum(mnist_copy, capsys):
    expected = np.array(load_dataset("mnist", mnist_copy).test)
    path = _cached_entry(mnist_copy) / "test_images.arrow"
    raw = bytearray(path.read_bytes())
    pixel = np.float32(expected.reshape(-1)[expected.reshape(-1) > 0][0])
    body = raw.index(pixel.tobytes())
    raw[body : body + 4] = np.float32(0.5 if pixel != 0.5 else 0.25).tobytes()  # still a pixel
    path.write_bytes(bytes(raw))
    again = load_dataset("mnist", mnist_copy)
    err = capsys.readouterr().err
    assert f"rebuilding unreadable cache {path.parent}" in err
    assert "test_images: its bytes changed since the cache was written (checksum)" in err
    assert err.count("\n") == 1
    np.testing.assert_array_equal(again.test, expected)
    capsys.readouterr()
    load_dataset("mnist", mnist_copy)  # the rebuilt entry passes
    assert capsys.readouterr().err == ""


def test_changed_shape_metadata_in_the_cache_is_caught_and_rebuilt(mnist_copy, capsys):
    expected = np.array(load_dataset("mnist", mnist_copy).test)
    path = _cached_entry(mnist_copy) / "test_images.arrow"
    raw = path.read_bytes()
    assert raw.count(b"10000,784") == 2  # the schema is written twice in an IPC file
    path.write_bytes(raw.replace(b"10000,784", b"20000,392"))
    again = load_dataset("mnist", mnist_copy)
    err = capsys.readouterr().err
    assert "rebuilding unreadable cache" in err and "(20000, 392) in the file" in err
    np.testing.assert_array_equal(again.test, expected)


def test_truncated_gzip_names_the_file(mnist_dir, tmp_path):
    target = _link_all_but(mnist_dir, tmp_path / "d", "test_labels")
    good = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (target / "t10k-labels-idx1-ubyte.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: truncated or corrupt gzip"):
        load_dataset("mnist", target, download=False)


def test_truncated_plain_file_names_the_file(mnist_dir, tmp_path):
    target = _link_all_but(mnist_dir, tmp_path / "d", "test_labels")
    content = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (target / "t10k-labels-idx1-ubyte").write_bytes(content[:5000])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: 5000 bytes uncompressed"):
        load_dataset("mnist", target, download=False)


def test_corrupt_byte_fails_the_checksum_naming_the_file(mnist_dir, tmp_path):
    target = _link_all_but(mnist_dir, tmp_path / "d", "test_labels")
    content = bytearray(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    content[100] ^= 0xFF
    (target / "t10k-labels-idx1-ubyte").write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: md5 .* does not match"):
        load_dataset("mnist", target, download=False)


def test_a_gzip_that_inflates_past_the_standard_size_is_refused(tmp_path, mnist_dir):
    found = idx.find_files(idx.MNIST, mnist_dir)
    for path in found.values():
        (tmp_path / path.name).symlink_to(path)
    labels = found["test_labels"]
    bomb = tmp_path / labels.name
    bomb.unlink()
    bomb.write_bytes(gzip.compress(b"\0" * (64 << 20)))  # 64 MiB of zeros in about 64 KiB
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DataError, match=re.escape(f"{bomb}: inflates to more than the 10,008")):
        load_dataset("mnist", tmp_path)


def test_missing_files_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match=rf"mnist files not found in {tmp_path}.*--data-dir"):
        load_dataset("mnist", tmp_path, download=False)


def test_data_directory_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSEARCH_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg")[0] == tmp_path / "arg"
    assert resolve_data_dir(None) == (
        tmp_path / "env",
        "the GANSEARCH_DATA_DIR environment variable",
    )
    monkeypatch.delenv("GANSEARCH_DATA_DIR")
    monkeypatch.setenv("GANSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    assert resolve_data_dir(None)[0] == tmp_path / "cache" / "data"


class _Mirror:
    """A local HTTP server standing in for a download mirror."""

    def __init__(self, directory: Path):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
            *a, directory=str(directory), **k
        )
        handler.log_message = lambda *a: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_download_from_mirror_verifies_and_loads(mnist_dir, tmp_path, monkeypatch, capsys):
    with _Mirror(mnist_dir) as url:
        source = dataclasses.replace(idx.MNIST, mirrors=(url,))
        monkeypatch.setitem(data_module.IDX_SOURCES, "mnist", source)
        data = load_dataset("mnist", tmp_path / "fresh")
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == sorted(
        f.name + ".gz" for f in idx.MNIST.files.values()
    )
    assert data.train.shape == (50_000, 784)
    assert f"downloading {url}train-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_offline_download_fails_clearly_and_leaves_nothing(tmp_path):
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(
        DataError, match=rf"could not download mnist.*Put the files .* into {tmp_path}"
    ):
        idx.download(idx.MNIST, tmp_path, mirrors=(closed,), timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_download_is_rejected_and_not_kept(mnist_dir, tmp_path):
    served = _link_all_but(mnist_dir, tmp_path / "served", "train_labels")
    good = (mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes()
    (served / "train-labels-idx1-ubyte.gz").write_bytes(good[:-100])
    target = tmp_path / "target"
    with _Mirror(served) as url, pytest.raises(DataError, match="truncated or corrupt gzip"):
        idx.download(idx.MNIST, target, mirrors=(url,))
    assert not list(target.glob("train-labels*"))


def test_fashion_mnist(fashion_dir):
    data = load_dataset("fashion_mnist", fashion_dir, download=False)
    assert (data.train.shape, data.valid.shape, data.test.shape) == (
        (50_000, 784),
        (10_000, 784),
        (10_000, 784),
    )
    assert (
        np.bincount(np.concatenate([data.train_labels, data.valid_labels])).tolist() == [6000] * 10
    )
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


def test_digits_is_offline_and_tiny():
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    assert (len(data.train), len(data.valid), len(data.test)) == (1197, 300, 300)
    assert data.image_shape == (8, 8) and data.dim == 64
    np.testing.assert_allclose(data.test, load_digits().data[1497:] / 16.0, rtol=1e-6)


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="unknown data set 'cifar'.*mnist"):
        load_dataset("cifar")


def _write_tfd(path: Path, n: int = 80) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    mat = {
        "images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        "folds": rng.integers(0, 4, (n, 5)).astype(np.uint8),
        "labs_ex": rng.integers(-1, 7, (n, 1)).astype(np.int16),
    }
    scipy.io.savemat(str(path), mat)
    return mat


def test_tfd_folds_from_a_synthetic_mat_file(tmp_path):
    mat = _write_tfd(tmp_path / "TFD_48x48.mat")
    for fold in (0, 3):
        data = load_dataset("tfd", tmp_path, fold=fold)
        column = mat["folds"][:, fold]
        images = mat["images"].reshape(len(column), -1) / 255.0
        np.testing.assert_allclose(data.train, images[column <= 1], rtol=1e-6)
        np.testing.assert_allclose(data.valid, images[column == 2], rtol=1e-6)
        np.testing.assert_allclose(data.test, images[column == 3], rtol=1e-6)
        np.testing.assert_array_equal(data.test_labels, mat["labs_ex"][column == 3, 0])
        assert data.image_shape == (48, 48) and data.train.dtype == np.float32


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("folds"), "missing the variable 'folds'"),
        (lambda m: m.update(images=m["images"][:, :40]), r"'images' has shape \(80, 40, 48\)"),
        (lambda m: m.update(folds=m["folds"][:, :4]), r"'folds' has shape \(80, 4\)"),
        (lambda m: m.update(folds=m["folds"] + 7), "'folds' holds values other than 0, 1, 2 and 3"),
        (
            lambda m: m.update(images=np.where(m["images"] > 250, np.nan, m["images"] / 255.0)),
            "'images' holds values that are not finite numbers",
        ),
        (
            lambda m: m.update(images=m["images"].astype(np.float64) - 1.0),
            r"'images' spans \[-1, 254\]; expected pixels in \[0, 255\] or \[0, 1\]",
        ),
    ],
)
def test_tfd_malformed_file_is_named(tmp_path, mutate, message):
    path = tmp_path / "TFD_48x48.mat"
    mat = _write_tfd(path)
    mutate(mat)
    scipy.io.savemat(str(path), mat)
    with pytest.raises(DataError, match=rf"TFD_48x48\.mat: {message}"):
        load_dataset("tfd", tmp_path)


def test_tfd_not_a_mat_file_and_bad_fold(tmp_path):
    (tmp_path / "TFD_48x48.mat").write_bytes(b"not a matlab file at all" * 10)
    with pytest.raises(DataError, match=r"TFD_48x48\.mat: not a readable \.mat file"):
        load_dataset("tfd", tmp_path)
    _write_tfd(tmp_path / "TFD_48x48.mat")
    with pytest.raises(DataError, match="fold must be 0..4, got 5"):
        load_dataset("tfd", tmp_path, fold=5)


def test_tfd_missing_file_says_it_is_not_downloadable(tmp_path):
    with pytest.raises(DataError, match="TFD is not publicly downloadable"):
        load_dataset("tfd", tmp_path)


def test_array_digest_tells_apart_bytes_types_shapes_and_labels() -> None:
    import numpy as np

    from gansearch.data.base import array_digest

    a = np.arange(6, dtype=np.float32)
    same = array_digest([(None, a.copy())])
    assert array_digest([(None, a)]) == same
    assert array_digest([(None, a.reshape(2, 3))]) != same
    assert array_digest([(None, a.astype(np.float64))]) != same
    assert array_digest([("train", a)]) != same
    assert array_digest([(None, a)], header="digits") != same
    b = a.copy()
    b[5] = 7.0
    assert array_digest([(None, b)]) != same
