"""Text data: tokenizers, the vocabulary, the TextEncoder and its saved JSON, the built-in text datasets read from the
shared data folder, the user's own text tables, and padded, length-bucketed batches."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from neuronkit import FormatError
from neuronkit.data import DATASETS, DataFileError, DataLoader, SequenceDataset, load_dataset
from neuronkit.data.datasets.download import ChecksumError
from neuronkit.data.text import (
    TEXT_SOURCES,
    CharTokenizer,
    TextEncoder,
    Vocab,
    WordTokenizer,
    load_text_dataset,
    ptb_untokenize,
    read_text_table,
)

DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TEXT = DATA / "text"


# -- tokenizers and the vocabulary ----------------------------------------------------------------------------------
def test_word_tokenizer_is_unicode_aware_and_lower_cases_on_request():
    t = WordTokenizer()
    words = ["crème", "brûlée", ",", "3", "éclairs", "&", "naïveté", "!"]
    assert t.tokenize("Crème brûlée, 3 ÉCLAIRS & naïveté!") == words
    assert WordTokenizer(lowercase=False).tokenize("Über Straße") == ["Über", "Straße"]
    assert t.tokenize("東京は 2024年") == ["東京は", "2024年"]
    assert t.tokenize("don't...") == ["don", "'", "t", ".", ".", "."]
    assert t.tokenize("") == [] and t.tokenize("  \t\n") == []


def test_batch_tokenization_equals_one_text_at_a_time_even_with_nul_characters():
    texts = ["A b", "", "c\x00d e", "  ", "F! g", "x\x00"]
    for tok in (WordTokenizer(), CharTokenizer(), WordTokenizer(lowercase=False)):
        enc = TextEncoder(tok.kind, lowercase=tok.lowercase).fit(texts)
        ids, lengths = enc.encode(texts)
        assert lengths.tolist() == [len(tok.tokenize(t.replace("\x00", " "))) for t in texts]
        parts = np.split(ids, np.cumsum(lengths)[:-1])
        for t, p in zip(texts, parts):
            assert enc.vocab.lookup(p) == tok.tokenize(t.replace("\x00", " "))


def test_char_tokenizer_keeps_every_character():
    assert CharTokenizer().tokenize("Ab c!") == ["A", "b", " ", "c", "!"]
    assert CharTokenizer(lowercase=True).tokenize("Ab") == ["a", "b"]


def test_vocab_min_freq_max_size_specials_and_ties():
    counts = {"b": 3, "a": 3, "c": 1, "d": 2}
    v = Vocab.build(counts)
    assert v.tokens == ["<pad>", "<unk>", "a", "b", "d", "c"]  # by count, ties by text
    assert Vocab.build(counts, min_freq=2).tokens == ["<pad>", "<unk>", "a", "b", "d"]
    assert Vocab.build(counts, max_size=4).tokens == ["<pad>", "<unk>", "a", "b"]
    assert v.ids(["a", "zzz", "c"]).tolist() == [2, 1, 5]
    assert v["nope"] == 1 and "a" in v and len(v) == 6
    with pytest.raises(ValueError, match="first two tokens"):
        Vocab(["a", "<pad>"])
    with pytest.raises(ValueError, match="more than once"):
        Vocab(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(counts, min_freq=0)


def test_encoder_maps_unseen_tokens_to_unk_and_truncates_at_max_len():
    enc = TextEncoder("word", max_len=3).fit(["the cat sat", "the dog"])
    ids, lengths = enc.encode(["the zebra sat on the mat"])
    assert lengths.tolist() == [6]
    assert enc.vocab.lookup(ids) == ["the", "<unk>", "sat", "<unk>", "the", "<unk>"]
    ds = enc.dataset(["the zebra sat on the mat", "dog"], [1, 0])
    tokens, lens, labels = ds.get_batch([0, 1])
    assert lens.tolist() == [3, 1] and tokens.shape == (2, 3) and labels.tolist() == [1, 0]
    assert tokens[1, 1:].tolist() == [0, 0]  # padding is id 0
    assert enc.tokens("the zebra sat on") == ["the", "<unk>", "sat"]


@pytest.mark.parametrize("kind", ["word", "char", "bpe", "wordpiece"])
def test_encoder_save_load_round_trip(kind, tmp_path):
    texts = [f"review {i}: the film was {'great' if i % 2 else 'dull'}, truly {i * 7}" for i in range(200)]
    enc = TextEncoder(kind, max_size=None if kind in ("word", "char") else 60, max_len=40).fit(texts)
    enc.save(tmp_path / "tok.json")
    doc = json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))
    assert doc["format"] == "neuronkit.text_encoder" and doc["vocab"][:2] == ["<pad>", "<unk>"]
    back = TextEncoder.load(tmp_path / "tok.json")
    new = ["the film was great, not dull!", "unseen wörds ☃"]
    for a, b in zip(enc.encode(texts + new), back.encode(texts + new)):
        np.testing.assert_array_equal(a, b)
    assert back.vocab.tokens == enc.vocab.tokens and back.max_len == 40


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_subword_training_splits_rare_words(kind):
    texts = [f"the unbelievably {w} film" for w in ("good", "bad", "long", "short")] * 30
    a = TextEncoder(kind, max_size=80).fit(texts)
    if kind == "bpe":  # (the package's WordPiece trainer breaks ties between equally frequent pieces differently
        # from run to run; a run's saved tokenizer is what its evaluate, predict and resume use)
        assert a.vocab.tokens == TextEncoder(kind, max_size=80).fit(texts).vocab.tokens
    assert len(a) <= 80
    pieces = a.tokens("thebad")
    assert len(pieces) >= 2 and "<unk>" not in pieces  # a word it never saw whole is spelled in pieces


def _saved(tmp_path, **changes):
    enc = TextEncoder("bpe", max_size=40).fit(["abc abd abe"] * 20)
    doc = enc.to_dict()
    doc.update(changes)
    p = tmp_path / "tok.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format": "other"}, "not a neuronkit text encoder"),
        ({"version": 99}, "version"),
        ({"tokenizer": {"kind": "exec", "lowercase": True}}, "'tokenizer' must be"),
        ({"tokenizer": "word"}, "'tokenizer' must be"),
        ({"vocab": ["<unk>", "<pad>", "a"]}, "must start with"),
        ({"vocab": "abc"}, "'vocab' must be a list"),
        ({"vocab": ["<pad>", "<unk>", 3]}, "vocab entry 2"),
        ({"vocab": ["<pad>", "<unk>", "a", "a"]}, "more than once"),
        ({"vocab": ["<pad>", "<unk>", "x" * 500]}, "vocab entry 2"),
        ({"max_len": -1}, "'max_len'"),
        ({"max_len": True}, "'max_len'"),
        ({"max_size": 3}, "more than its max_size"),
        ({"merges": [["a", "zz"]]}, "missing from the vocab"),
        ({"merges": [["a"]]}, "pair of non-empty strings"),
        ({"merges": None}, "needs 'merges'"),
    ],
)
def test_hostile_encoder_files_raise_format_error(changes, message, tmp_path):
    with pytest.raises(FormatError, match=message):
        TextEncoder.load(_saved(tmp_path, **changes))


def test_encoder_file_that_is_not_json_or_too_large_is_a_format_error(tmp_path, monkeypatch):
    p = tmp_path / "tok.json"
    for raw in (b"", b"\xff\xfe", b"[" * 100000, b'{"format": "neuronkit.text_encoder"'):
        p.write_bytes(raw)
        with pytest.raises(FormatError):
            TextEncoder.load(p)
    with pytest.raises(FormatError, match="cannot read"):
        TextEncoder.load(tmp_path / "missing.json")
    from neuronkit.data.text import encoder

    monkeypatch.setattr(encoder, "MAX_FILE_BYTES", 100)
    p.write_text(json.dumps({"vocab": ["x" * 200]}))
    with pytest.raises(FormatError, match="larger than"):
        TextEncoder.load(p)


def test_fuzzed_encoder_files_only_raise_format_error(tmp_path):
    rng = np.random.default_rng(7)
    good = _saved(tmp_path).read_bytes()
    p = tmp_path / "fuzz.json"
    for _ in range(300):
        raw = bytearray(good)
        for _ in range(rng.integers(1, 5)):
            raw[rng.integers(len(raw))] = rng.integers(32, 127)
        p.write_bytes(bytes(raw[: rng.integers(len(raw) // 2, len(raw) + 1)]))
        try:
            TextEncoder.load(p).encode(["abc abd"])
        except FormatError:
            pass


# -- built-in datasets --------------------------------------------------------------------------------------------
def test_text_datasets_are_registered_with_their_sizes():
    assert {n: DATASETS[n].size for n in TEXT_SOURCES} == {"sms_spam": 5574, "sentiment": 3000, "sst2": 70042}
    assert all(DATASETS[n].kind == "text" for n in TEXT_SOURCES)


def test_sms_spam_split_is_stratified_and_seeded():
    a = load_text_dataset("sms_spam", data_dir=TEXT, seed=0)
    assert (len(a.train_texts), len(a.test_texts)) == (4459, 1115)
    assert a.classes == ("ham", "spam") and a.val_texts is None
    spam = np.concatenate([a.train_labels, a.test_labels]).sum()
    assert spam == 747
    assert abs(a.test_labels.mean() - 747 / 5574) < 0.002  # stratified
    b = load_text_dataset("sms_spam", data_dir=DATA, seed=0)  # the folder above text/ works too
    c = load_text_dataset("sms_spam", data_dir=TEXT, seed=1)
    assert a.test_texts == b.test_texts and a.test_texts != c.test_texts
    assert load_dataset("sms_spam", data_dir=TEXT).test_texts == a.test_texts


def test_sentiment_reads_all_three_files():
    s = load_text_dataset("sentiment", data_dir=TEXT)
    assert len(s.train_texts) + len(s.test_texts) == 3000
    assert np.concatenate([s.train_labels, s.test_labels]).sum() == 1500
    assert any("Wow... Loved this place." == t for t in s.train_texts + s.test_texts)  # yelp, tab and label gone


def test_sst2_splits_and_ptb_tokens_mapped_back():
    s = load_text_dataset("sst2", data_dir=TEXT)
    assert (len(s.train_texts), len(s.val_texts), len(s.test_texts)) == (67349, 872, 1821)
    assert int(s.test_labels.sum()) == 909
    joined = "\n".join(s.test_texts)
    for escape in ("-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-", "\\/", "\\*"):
        assert escape not in joined
    assert "( writer/director )" in joined and "***" in joined
    # after the mapping, the test sentences are GLUE's own (unlabelled) test sentences, but for spelling variants
    glue = {ln.split("\t", 1)[1].strip() for ln in (TEXT / "sst2/glue/test.tsv").read_text().splitlines()[1:]}
    assert sum(t in glue for t in s.test_texts) >= 1821 - 20


def test_ptb_untokenize():
    assert ptb_untokenize("-LRB- a \\/ b -rrb- -lsb-x-rsb- -lcb- \\* -rcb-") == "( a / b ) [x] { * }"
    assert ptb_untokenize("well-lrb-ed") == "well(ed"


def test_missing_file_is_one_line_naming_file_directory_and_how_to_get_it(tmp_path):
    (tmp_path / "sst2" / "glue").mkdir(parents=True)
    shutil.copy(TEXT / "sst2/glue/dev.tsv", tmp_path / "sst2/glue/dev.tsv")
    with pytest.raises(FileNotFoundError) as e:
        load_text_dataset("sst2", data_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert "glue/train_full.tsv not found in " + str(tmp_path) in msg
    assert str(tmp_path / "sst2") in msg and "SST-2.zip" in msg


def test_no_data_dir_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("NEURONKIT_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="--data-dir DIR .*NEURONKIT_DATA.*archive.ics.uci.edu"):
        load_text_dataset("sms_spam")


def test_checksums_are_checked(tmp_path):
    d = tmp_path / "sms_spam"
    d.mkdir()
    raw = (TEXT / "sms_spam/SMSSpamCollection").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == TEXT_SOURCES["sms_spam"].files["data"].sha256
    (d / "SMSSpamCollection").write_bytes(raw.replace(b"ham\tOk lar", b"spam\tOk lar", 1))
    with pytest.raises(ChecksumError, match="not the published file"):
        load_text_dataset("sms_spam", data_dir=tmp_path)
    assert len(load_text_dataset("sms_spam", data_dir=tmp_path, verify=False).train_texts) == 4459


# -- the user's own text tables -------------------------------------------------------------------------------------
def _write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return p


def test_read_text_table_joins_columns_and_sorts_numeric_classes(tmp_path):
    p = _write(tmp_path, "r.csv", 'title,review,stars\nGreat,"Loved it, really",5\nMeh,So so,3\nBad,Awful,10\n')
    texts, y, classes, target = read_text_table(p, ["title", "review"], "stars")
    assert texts == ["Great Loved it, really", "Meh So so", "Bad Awful"]
    assert classes == ["3", "5", "10"] and y.tolist() == [1, 0, 2] and target == "stars"
    t = _write(tmp_path, "r.tsv", "text\tlabel\nfine\tpos\nbad\tneg\n")
    assert read_text_table(t, "text")[2] == ["neg", "pos"]  # tab-separated by suffix; label: the other column


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        ("review,stars\nok,5\n,4\n", {}, r"missing or empty text at row 3, column 'review'"),
        ("review,stars\nok,5\n   ,4\n", {}, r"missing or empty text at row 3, column 'review'"),
        ("review,stars\nok,5\nfine,\n", {}, r"missing label at row 3, column 'stars'"),
        ("review,stars\nok,5\nfine,5\n", {}, r"label column 'stars' has one class \('5'\) in all 2 rows"),
        ("review,stars\nok,5\nfine\n", {}, r"row 3 has 1 fields, expected 2"),
        ("text,stars\nok,5\n", {}, r"no text column 'review'; the columns are \['text', 'stars'\]"),
        ("review,stars\nok,5\n", {"target": "label"}, r"no label column 'label'"),
        ("review\nok\n", {}, "every column is a text column"),
        ("review,stars\n", {}, "no data rows"),
    ],
)
def test_read_text_table_errors_name_file_row_and_column(content, kwargs, message, tmp_path):
    p = _write(tmp_path, "r.csv", content)
    with pytest.raises(DataFileError, match=message) as e:
        read_text_table(p, "review", **kwargs)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_read_text_table_keeps_quoted_newlines_and_unicode_line_separators_in_their_cell(tmp_path):
    p = _write(tmp_path, "r.csv", 'review,stars\n"two\nlines",5\nform\x0cfeed and \u2028 sep,1\nlast,1\n')
    texts, y, _, _ = read_text_table(p, "review")
    assert texts == ["two\nlines", "form\x0cfeed and \u2028 sep", "last"] and y.tolist() == [1, 0, 0]
    with pytest.raises(DataFileError, match="missing or empty text at row 5"):  # row numbers are the file's lines
        read_text_table(_write(tmp_path, "s.csv", 'review,stars\n"two\nlines",5\nok,1\n,1\n'), "review")


def test_read_text_table_rejects_a_file_that_is_not_utf8(tmp_path):
    p = _write(tmp_path, "r.csv", "review,stars\nok,5\ncaf\xe9 cr\xe8me,4\n", encoding="latin-1")
    with pytest.raises(DataFileError, match=r"not UTF-8 text: byte 0xe9 at row 3, column 1"):
        read_text_table(p, "review")


# -- padded batches and length bucketing ----------------------------------------------------------------------------
def _lengths_dataset(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 60, size=n)
    seqs = [rng.integers(1, 50, size=k) for k in lengths]
    return SequenceDataset(seqs, labels=np.arange(n)), seqs


def test_from_flat_equals_the_list_constructor():
    ds, seqs = _lengths_dataset(200)
    flat = SequenceDataset.from_flat(np.concatenate(seqs), [len(s) for s in seqs], np.arange(200), max_len=25)
    ref = SequenceDataset([s[:25] for s in seqs], labels=np.arange(200))
    idx = np.array([5, 0, 199, 17])
    for a, b in zip(flat.get_batch(idx), ref.get_batch(idx)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="lengths sum to"):
        SequenceDataset.from_flat([1, 2, 3], [1, 1])


def test_padding_and_masks():
    ds = SequenceDataset([[5, 6, 7], [8], []], labels=[0, 1, 0], pad_value=0)
    tokens, lengths, labels = ds.get_batch([0, 1, 2])
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]] and lengths.tolist() == [3, 1, 0]
    mask = np.arange(tokens.shape[1]) < lengths[:, None]
    assert (tokens[~mask] == 0).all() and (tokens[mask] != 0).all()


def test_bucketing_covers_every_sample_once_per_epoch_and_pads_less():
    ds, _ = _lengths_dataset()
    plain = DataLoader(ds, batch_size=32, shuffle=True, seed=3)
    bucketed = DataLoader(ds, batch_size=32, shuffle=True, seed=3, bucket=True, bucket_chunk=10)
    assert len(bucketed) == len(plain) == 32

    def padded(loader):
        return sum(t.size for t, _, _ in loader)

    seen_orders = []
    for _epoch in range(3):
        labels = [y for _, _, y in bucketed]
        flat = np.concatenate(labels)
        assert sorted(flat.tolist()) == list(range(1000))  # every sample exactly once
        seen_orders.append(flat)
    assert not np.array_equal(seen_orders[0], seen_orders[1])  # a new order each epoch
    real = int(ds.lengths.sum())
    assert padded(bucketed) < 1.15 * real < padded(plain)  # most padding gone
    # without shuffling: the whole dataset sorted by length
    ordered = np.concatenate([lengths for _, lengths, _ in DataLoader(ds, batch_size=64, bucket=True)])
    assert (np.diff(ordered) >= 0).all()


def test_bucketing_is_deterministic_and_resumes_mid_epoch():
    ds, _ = _lengths_dataset(300)

    def loader():
        return DataLoader(ds, batch_size=16, shuffle=True, seed=11, bucket=True, bucket_chunk=4, drop_last=True)

    a = loader()
    full = [[y.tolist() for _, _, y in a] for _ in range(2)]
    assert full == [[y.tolist() for _, _, y in loader()] for _ in range(1)] + full[1:]
    assert all(len(b) == 16 for epoch in full for b in epoch)  # drop_last drops the short batch only

    b = loader()
    it = iter(b)
    first = [next(it)[2].tolist() for _ in range(5)]
    state = json.loads(json.dumps(b.state_dict()))
    c = loader()
    c.load_state_dict(state)
    rest = [y.tolist() for _, _, y in c] + [y.tolist() for _, _, y in c]
    assert first + rest == full[0] + full[1]
    with pytest.raises(ValueError, match="bucket"):
        DataLoader(ds, batch_size=16, shuffle=True, seed=11).load_state_dict(state)


def test_bucketing_needs_lengths():
    from neuronkit.data import ArrayDataset

    with pytest.raises(ValueError, match=r"needs a dataset with one length per sample"):
        DataLoader(ArrayDataset(np.zeros((4, 2))), bucket=True)
