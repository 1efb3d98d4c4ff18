r"""Data: download with checksum and cache, the corpora and their splits, digits (8×8 and MNIST), sentiment snippets, generated toy tasks, augmentation (the vocabularies live in :mod:`dlscratch.tokenizers`)."""

from .augment import (
    add_gaussian_noise,
    augment_digits,
    random_rotation,
    random_shift,
    rotate_images,
    rotation_grid,
    shift_images,
)
from .captions import (
    DIGIT_NAMES,
    HELD_OUT_TEMPLATE,
    TRAIN_TEMPLATES,
    caption,
    caption_tokenizer,
    drop_words,
    encode_captions,
    random_captions,
)
from .digits import DigitsSplit, load_digits_split
from .icl_tasks import regression_prompts, repeated_tokens
from .download import CACHE_ENV, DATA_ENV, REGISTRY, DataFile, cache_dir, fetch, sha256_of
from .mnist import load_mnist, mnist_split
from .padding import pad_sequences
from .names import NamesSplit, build_examples, names_split, split_words
from .sentiment import SENTIMENT_LABELS, SentimentSplit, load_afinn, load_sentiment, sentiment_split
from .splits import check_fractions, stratified_indices
from .text import load_names, load_shakespeare
from .toy_seq import DATE_VOCAB, Seq2SeqSplit, Seq2SeqTensors, date_split, encode_pairs, format_date
from .toy_tasks import IGNORE_INDEX, RetrievalData, key_value_retrieval, previous_token_task, selective_copying
from .translation import DIGIT_VOCAB, NUMBER_WORDS, TranslationSplit, encode_translation, number_split, number_to_words
from .shakespeare_turns import RagSplit, Turn, rag_split, speaker_turns, word_tokens

__all__ = [
    "DIGIT_NAMES",
    "TRAIN_TEMPLATES",
    "HELD_OUT_TEMPLATE",
    "caption",
    "random_captions",
    "drop_words",
    "caption_tokenizer",
    "encode_captions",
    "DigitsSplit",
    "load_digits_split",
    "shift_images",
    "random_shift",
    "rotation_grid",
    "rotate_images",
    "random_rotation",
    "add_gaussian_noise",
    "augment_digits",
    "CACHE_ENV",
    "DATA_ENV",
    "REGISTRY",
    "DataFile",
    "cache_dir",
    "fetch",
    "sha256_of",
    "load_names",
    "pad_sequences",
    "load_mnist",
    "mnist_split",
    "SENTIMENT_LABELS",
    "SentimentSplit",
    "load_sentiment",
    "sentiment_split",
    "load_afinn",
    "check_fractions",
    "stratified_indices",
    "NamesSplit",
    "build_examples",
    "names_split",
    "split_words",
    "load_shakespeare",
    "RetrievalData",
    "key_value_retrieval",
    "previous_token_task",
    "selective_copying",
    "IGNORE_INDEX",
    "DATE_VOCAB",
    "Seq2SeqSplit",
    "Seq2SeqTensors",
    "format_date",
    "date_split",
    "encode_pairs",
    "NUMBER_WORDS",
    "DIGIT_VOCAB",
    "number_to_words",
    "TranslationSplit",
    "number_split",
    "encode_translation",
    "repeated_tokens",
    "regression_prompts",
    "Turn",
    "RagSplit",
    "speaker_turns",
    "rag_split",
    "word_tokens",
]
