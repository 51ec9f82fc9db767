"""Perturbations at preparation time: per-document swap, unigram, packed isolate/context."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest

from convergent.data import prepare_corpus
from convergent.data.packing import PackedBatches
from convergent.data.perturbed import number_mask, perturbed_stream
from convergent.train.config import TrainConfig
from convergent.train.data import WindowBatches
from convergent.train.perturb import isolate_segments, number_runs, parse_perturbation
from convergent.train.stream import make_batches, prepare_data

TEXTS = [f"Doc {i}: in {1900 + i} the state had {i * 7} farms, {i % 13} ports and "
         f"{i * 31} people; the river was {i + 5} miles long." for i in range(150)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("perturb")
    path = folder / "text.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return prepare_corpus(str(path), folder / "d", vocab_size=1300, shard_tokens=2000)


def _documents(stream, offsets):
    return [np.asarray(stream[a:b]) for a, b in itertools.pairwise(offsets)]


def test_swap_permutes_numbers_within_each_document(data):
    tok = data.tokenizer()
    table = number_mask(tok)
    swapped = perturbed_stream(data, "swap", 0, tok)
    moved = 0
    for shard, new, offsets in zip(data.shards(), swapped.shards, data.offsets(), strict=True):
        assert new.dtype == np.uint16 and len(new) == len(shard)
        for old_doc, new_doc in zip(_documents(shard, offsets), _documents(new, offsets),
                                    strict=True):
            runs = [Counter(tuple(d[a:b]) for a, b in zip(*number_runs(table[d]), strict=True))
                    for d in (old_doc, new_doc)]
            assert runs[0] == runs[1]  # the document's multiset of numbers
            assert np.array_equal(old_doc[~table[old_doc]], new_doc[~table[new_doc]])
            moved += not np.array_equal(old_doc, new_doc)
    assert moved > 0.8 * len(TEXTS)
    done = data.folder / "perturbed" / "swap-seed0" / "done.json"
    stamp = done.stat().st_mtime_ns
    perturbed_stream(data, "swap", 0, tok)  # cached: not made again
    assert done.stat().st_mtime_ns == stamp
    global_swap = np.asarray(perturbed_stream(data, "swap-global", 0, tok))
    first = data.offsets()[0]
    assert any(Counter(d[table[d]].tolist()) != Counter(o[table[o]].tolist())
               for d, o in zip(_documents(global_swap, first),
                               _documents(data.shards()[0], first), strict=True))


def test_unigram_keeps_text_and_draws_from_the_corpus_marginal(data):
    tok = data.tokenizer()
    table = number_mask(tok)
    base, new = np.asarray(data.stream()), np.asarray(perturbed_stream(data, "unigram", 1, tok))
    assert np.array_equal(base[~table[base]], new[~table[base]])
    assert set(new[table[base]].tolist()) <= set(base[table[base]].tolist())
    assert (new[table[base]] != base[table[base]]).mean() > 0.5


def _check_packed(batches, eos, is_number, k=None):
    """Segment ids, mask, <= k numbers per segment, documents never mixed in a segment."""
    for i in range(len(batches) // batches.batch_size):
        batch = batches.batch(i)
        seg, mask, tokens = batch.segments.numpy(), batch.mask.numpy(), batch.tokens.numpy()
        assert seg.dtype == np.int32 and np.all(seg[:, 0] == 0)
        assert np.all(np.diff(seg, axis=1) >= 0)
        assert np.array_equal(mask[:, :-1], seg[:, 1:] == seg[:, :-1])
        full = np.concatenate([seg, seg[:, -1:] + (~mask[:, -1:])], axis=1)
        for row in range(len(seg)):
            for s in np.unique(full[row]):
                inside = tokens[row][full[row] == s]
                assert not np.any(inside[1:-1] == eos)  # end-of-text only opens or closes
                assert k is None or is_number[inside].sum() <= k


@pytest.mark.parametrize("k", [1, 3])
def test_isolate_packs_segments_with_at_most_k_numbers_and_little_padding(data, tmp_path, k):
    config = TrainConfig(corpus=str(data.manifest["source"]["corpus"]), data=str(data.folder),
                         vocab_size=1300, batch_size=4, seq_len=32, tokens=4 * 32,
                         perturb=f"isolate-{k}")
    tok, stream = prepare_data(tmp_path / "run", config, progress=False)
    batches = make_batches(stream, tok, config)
    assert isinstance(batches, PackedBatches)
    table = number_mask(tok)
    _check_packed(batches, data.eos, table, k)
    ids = np.asarray(stream)
    old_starts, old_lengths = isolate_segments(table[ids], k)  # padded windows, as before
    from convergent.train.perturb import split_segments

    old = WindowBatches(ids, 32, 4, 0, *split_segments(old_starts, old_lengths, 33))
    old_efficiency = float((old.lengths - 1).sum() / (len(old) * 32))
    assert batches.efficiency > 0.85 and (batches.efficiency > 2 * old_efficiency or k > 1)
    print(f"isolate-{k}: packed {batches.efficiency:.1%} of targets trained, "
          f"padded windows {old_efficiency:.1%}")


def test_context_rows_are_l_plus_1_tokens_that_never_cross_documents(data, tmp_path):
    config = TrainConfig(corpus=str(data.manifest["source"]["corpus"]), data=str(data.folder),
                         vocab_size=1300, batch_size=4, seq_len=32, tokens=4 * 32,
                         perturb="context-8")
    tok, stream = prepare_data(tmp_path / "run", config, progress=False)
    batches = make_batches(stream, tok, config)
    batch = batches.batch(0)
    assert batch.tokens.shape == (4 * 32 // 8, 9)
    _check_packed(batches, data.eos, number_mask(tok))
    assert batches.efficiency > 0.95


def test_packed_rows_cover_every_in_segment_target_once_per_epoch():
    stream = np.arange(100, dtype=np.uint16)
    starts, lengths = np.array([0, 9, 40]), np.array([10, 31, 60])
    batches = PackedBatches(stream, starts, lengths, width=9, batch_size=2, seed=0)
    pairs = Counter()
    for i in range(len(batches) // 2):
        b = batches.batch(i)
        t = b.tokens.numpy()
        for r, c in zip(*np.nonzero(b.mask.numpy()), strict=True):
            pairs[(t[r, c], t[r, c + 1])] += 1
    assert max(pairs.values()) == 1 and all(b == a + 1 for a, b in pairs)
    assert len(pairs) >= 97 - 2 * 8  # all but the dropped last partial row


def test_swap_global_parses():
    assert parse_perturbation("swap-global").kind == "swap-global"


def test_row_wise_segment_search_equals_a_plain_search():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 30, size=400)
    batches = PackedBatches(np.zeros(int(lengths.sum()), np.uint16), np.zeros(400, np.int64),
                            lengths, width=17, batch_size=32, seed=1)
    for index in range(5):
        rows = batches.order.rows(index, 32)
        position = rows[:, None] * 16 + np.arange(17)
        plain = np.searchsorted(batches.bounds, position, side="right") - 1
        assert np.array_equal(batches._segment_of(position), plain)
