"""Text data: built-in datasets, the user's own text files, tokenizers, vocabularies and the ``TextEncoder``.

::

    from neuronkit.data.text import TextEncoder, load_text_dataset

    s = load_text_dataset("sst2", data_dir="data")          # texts and labels of train, validation and test
    enc = TextEncoder("word", min_freq=1, max_len=64)
    ids, lengths = enc.fit_encode(s.train_texts)            # the vocabulary comes from the training split only
    test = enc.dataset(s.test_texts, s.test_labels)         # SequenceDataset: padded (tokens, lengths, labels)
    enc.save("run/tokenizer.json"); enc = TextEncoder.load("run/tokenizer.json")
"""

from .datasets import TEXT_SOURCES, TextSplits, load_text_dataset, locate, ptb_untokenize
from .encoder import TOKENIZERS, TextEncoder
from .files import read_text_table
from .subword import SubwordTokenizer
from .tokenize import CharTokenizer, WordTokenizer
from .vocab import PAD, UNK, Vocab

__all__ = [
    "PAD",
    "TEXT_SOURCES",
    "TOKENIZERS",
    "UNK",
    "CharTokenizer",
    "SubwordTokenizer",
    "TextEncoder",
    "TextSplits",
    "Vocab",
    "WordTokenizer",
    "load_text_dataset",
    "locate",
    "ptb_untokenize",
    "read_text_table",
]
