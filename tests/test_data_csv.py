"""CSV files (``data/datasets/csvfile.py``): the chunked parser against a reference, its three paths, its errors (one
line naming row and column), and its memory."""

from __future__ import annotations

import csv
import io
import tracemalloc

import numpy as np
import pytest

from neuronkit import backend as B
from neuronkit.data import DataFileError, load_csv, read_csv, read_csv_header
from neuronkit.data.datasets import csvparse, csvtext


def reference(text: str, target=None, header=True):
    """What a CSV means, read the slow and obvious way: csv.reader, float() per cell, blank rows skipped."""
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text))) if r and any(c.strip() for c in r)]
    names = [c.strip() for c in rows[0][1]] if header else [str(k) for k in range(len(rows[0][1]))]
    rows = rows[1:] if header else rows
    t = None if target is None else (names.index(target) if isinstance(target, str) else target % len(names))
    x = np.array([[float(c) for k, c in enumerate(r) if k != t] for _, r in rows], dtype=np.float32)
    ycells = None if t is None else [r[t].strip() for _, r in rows]
    return x, ycells, np.array([line for line, _ in rows])


def _table(rng, n, kind):
    if kind == "ints":
        return rng.integers(0, 256, (n, 6)).astype(str)
    if kind == "signed floats":
        return np.char.mod("%.6g", rng.normal(scale=1e3, size=(n, 6)))
    return np.char.mod("%.3e", rng.normal(size=(n, 6)))  # exponents


@pytest.mark.parametrize("kind", ["ints", "signed floats", "exponents"])
@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_parse_equals_the_reference_across_chunk_boundaries(kind, chunk, tmp_path, monkeypatch):
    # Small chunks put chunk boundaries everywhere (inside the header's chunk, between every few rows); blank lines,
    # CRLF line ends, quotes and a text or numeric target in the middle all read as the reference reads them.
    monkeypatch.setattr(csvtext, "CHUNK_BYTES", chunk)
    rng = np.random.default_rng(len(kind) + chunk)
    cells = _table(rng, 300, kind)
    labels = rng.choice(["cat", "dog", "emu"], 300)
    for variant in ("plain", "blank lines", "crlf", "quoted", "text target"):
        lines = ["a,b,c,label,d,e,f"]
        for k, row in enumerate(cells):
            mid = labels[k] if variant == "text target" else str(k % 3)
            vals = [*row[:3], mid, *row[3:]]
            if variant == "quoted":
                vals[1] = f'"{vals[1]}"'
            lines.append(",".join(vals))
            if variant == "blank lines" and k % 37 == 0:
                lines.append(" , ," if k % 2 else "")
        text = ("\r\n" if variant == "crlf" else "\n").join(lines) + "\n"
        p = tmp_path / f"{variant}.csv"
        p.write_bytes(text.encode())
        t = read_csv(p, target="label")
        x, ycells, rows = reference(text.replace("\r\n", "\n"), "label")
        np.testing.assert_array_equal(t.x, x, err_msg=variant)
        np.testing.assert_array_equal(t.lines, rows, err_msg=variant)
        if variant == "text target":
            assert t.classes == ["cat", "dog", "emu"] and [t.classes[i] for i in t.y] == ycells
        else:
            assert t.classes is None and list(t.y) == [float(c) for c in ycells]


def test_the_three_parsers_agree(tmp_path, monkeypatch):
    # The integer fast path, NumPy's loadtxt and the cell-by-cell parser give bit-identical arrays.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10**15, (500, 20))
    x[:, :10] = rng.integers(0, 300, (500, 10))  # pixel-like and very long integers (15 digits, exact in float64)
    p = tmp_path / "ints.csv"
    np.savetxt(p, np.c_[x, rng.integers(0, 10, 500)], fmt="%d", delimiter=",")
    results = []
    for disable in ([], ["parse_integers"], ["parse_integers", "parse_numpy"]):
        with monkeypatch.context() as m:
            for name in disable:
                m.setattr(csvparse, name, lambda *a: None)
            t = read_csv(p, target=-1, header=False, dtype=np.float64)
        results.append(t)
    for t in results[1:]:
        np.testing.assert_array_equal(t.x, results[0].x)
        np.testing.assert_array_equal(t.y, results[0].y)
    np.testing.assert_array_equal(results[0].x, x.astype(np.float64))


def test_integer_path_refuses_what_it_cannot_read_exactly(tmp_path):
    # 16-digit integers, signs, empty fields and ragged rows are left to the other parsers (which read them right)
    for text, expect in [
        ("a,b\n1234567890123456,1\n", [[1234567890123456.0]]),
        ("a,b\n-3,1\n", [[-3.0]]),
        ("a,b\n007,1\n", [[7.0]]),
    ]:
        p = tmp_path / "t.csv"
        p.write_text(text)
        np.testing.assert_array_equal(read_csv(p, target="b", dtype=np.float64).x, expect)


BAD = {
    "non-numeric value in a later chunk": (
        "a,b,y\n" + "1,2,0\n" * 3000 + "1,x,1\n",
        {"target": "y"},
        r"non-numeric value 'x' at row 3002, column 'b'$",
    ),
    "ragged row in a later chunk": ("a,b,y\n" + "1,2,0\n" * 3000 + "1,2\n", {"target": "y"}, r"row 3002 has 2 fields"),
    "missing value": ("a,b,y\n1,,1\n", {"target": "y"}, r"missing value at row 2, column 'b'"),
    "infinite value": ("a,b,y\n1,inf,1\n", {"target": "y"}, r"non-finite value 'inf' at row 2, column 'b'"),
    "feature beyond float32": (
        "a,b,y\n1,2,0\n1,1e39,1\n",
        {"target": "y"},
        r"value 1e39 at row 3, column 'b' is outside the range of float32",
    ),
    "missing target": ("a,b,y\n1,2,\n", {"target": "y"}, r"missing target value at row 2, column 'y'"),
    "misspelt target": (
        ",".join(f"pixel{i}" for i in range(784)) + ",label\n" + ",".join(["0"] * 785) + "\n",
        {"target": "lable"},
        r"no target column 'lable'; did you mean 'label'\? the columns are 'pixel0', .*, 'label' \(785 columns\)$",
    ),
    "empty file": ("", {"target": "y"}, r"the file is empty$"),
    "only blank lines": ("\n \n,,\n", {}, r"the file is empty$"),
    "only a header": ("a,b,y\n", {"target": "y"}, r"no data rows \(only a header: 'a', 'b', 'y'\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_csv_files_are_one_line_naming_row_and_column(case, tmp_path):
    text, kwargs, message = BAD[case]
    p = tmp_path / "d.csv"
    p.write_text(text)
    with pytest.raises(DataFileError, match=message) as e:
        read_csv(p, **kwargs)
    msg = str(e.value)
    assert msg.startswith(str(p)) and "\n" not in msg and len(msg) < 400


ENCODINGS = {
    "utf-16 with a byte-order mark": (
        lambda t: t.encode("utf-16"),
        r"row 1, column 1: the file is UTF-16 text .* save it as UTF-8",
    ),
    "utf-16 without a byte-order mark": (
        lambda t: t.encode("utf-16-le"),
        r"row 1, column 1: a NUL byte \(UTF-16 or binary data\?\) is not UTF-8 text",
    ),
    "latin-1 in the header": (
        lambda t: t.replace("b,", "caf\u00e9,").encode("latin-1"),
        r"row 1, column 2: byte 0xe9 is not UTF-8 text",
    ),
    "latin-1 in a data row": (
        lambda t: (t + "1,caf\u00e9,0\n").encode("latin-1"),
        r"row 4, column 'b': byte 0xe9 is not UTF-8 text; expected a UTF-8 \(or ASCII\) CSV file",
    ),
}


@pytest.mark.parametrize("case", list(ENCODINGS))
def test_files_that_are_not_utf8_are_one_line_naming_row_and_column(case, tmp_path):
    encode, message = ENCODINGS[case]
    p = tmp_path / "d.csv"
    p.write_bytes(encode("a,b,label\n1,2,0\n3,4,1\n"))
    with pytest.raises(DataFileError, match=message) as e:
        read_csv(p, target="label")
    assert "\n" not in str(e.value) and "codec" not in str(e.value)


def test_a_utf8_byte_order_mark_and_utf8_text_labels_are_fine(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("a,b,label\n1,2,caf\u00e9\n3,4,th\u00e9\n".encode("utf-8-sig"))
    t = read_csv(p, target="label")
    assert t.columns == ["a", "b"] and t.classes == ["caf\u00e9", "th\u00e9"]


def test_header_detection(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("\n1,2,3\n")
    assert read_csv_header(p) is None
    p.write_text("x,2,3\n1,2,3\n")
    assert read_csv_header(p) == ["x", "2", "3"]
    p.write_text("")
    with pytest.raises(DataFileError, match="the file is empty"):
        read_csv_header(p)


def test_a_mixed_target_column_is_read_as_text_labels(tmp_path, monkeypatch):
    # the first rows look numeric; a text label in a later chunk makes the whole column class names
    monkeypatch.setattr(csvtext, "CHUNK_BYTES", 64)
    p = tmp_path / "d.csv"
    p.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)) + "9,other\n")
    x, y, classes = load_csv(p, target="y", return_classes=True)
    assert classes == ["0", "1", "other"] and list(y[:3]) == [0, 1, 0] and y[-1] == 2


def test_load_csv_targets_integers_floats_and_huge_values(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,y\n1,3\n2,5\n")
    assert load_csv(p, target="y")[1].dtype == np.int64
    p.write_text("a,y\n1,0.5\n2,5\n")
    assert load_csv(p, target="y")[1].dtype == np.float32
    p.write_text("a,y\n1,1e30\n2,5\n")  # integral but beyond 2**53: not int64 (it wrapped to -9223372036854775808)
    y = load_csv(p, target="y")[1]
    assert y.dtype == np.float32 and y[0] == np.float32(1e30)
    p.write_text("a,y\n1,1\n2,1e39\n")
    with pytest.raises(DataFileError, match=r"row 3, column 'y': target value 1e\+39 is outside the range of float32"):
        load_csv(p, target="y")


def test_a_table_too_large_for_the_memory_is_refused_before_allocating(tmp_path, monkeypatch):
    p = tmp_path / "d.csv"
    p.write_text("a,b,y\n" + "1,2,0\n" * 1000)
    monkeypatch.setattr(B, "available_memory", lambda: B.Available(4000, "test limit"))
    with pytest.raises(DataFileError, match=r"1,000 rows of 2 values need 7.8 KB as float32, more than the 3.9 KB"):
        read_csv(p, target="y")


def test_peak_memory_is_a_small_multiple_of_the_array(tmp_path, monkeypatch):
    # Before: a list of Python strings per cell, about 10x the file (2.17 GB for a 200 MB file). Now: the array
    # plus one chunk's temporaries. Here a 12.5 MB array from 256 KB chunks (integers and decimals).
    monkeypatch.setattr(csvtext, "CHUNK_BYTES", 1 << 18)
    rng = np.random.default_rng(0)
    for name, fmt, values in (
        ("ints", "%d", rng.integers(0, 256, (4000, 785))),
        ("floats", "%.4f", rng.random((4000, 785))),
    ):
        p = tmp_path / f"{name}.csv"
        np.savetxt(p, values, fmt=fmt, delimiter=",", header=",".join(f"c{i}" for i in range(785)), comments="")
        tracemalloc.start()
        try:
            x, _ = load_csv(p, target=-1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert x.shape == (4000, 784)
        assert peak < 3 * x.nbytes, (name, peak / x.nbytes)
