"""The shard format, validation errors, the val truncation rule and the distributed loader."""

import numpy as np
import pytest
import torch

from golf.data.shards import (
    DistributedTokenLoader,
    TokenStream,
    list_shards,
    load_validation_tokens,
    read_shard,
    write_shard,
)
from golf.errors import GolfError


def test_round_trip_keeps_tokens_and_writes_the_exact_format(tmp_path):
    tokens = np.array([1, 0, 65535, 7, 300, 1], dtype=np.int64)
    path = write_shard(tmp_path / "s.bin", tokens)
    raw = path.read_bytes()
    assert len(raw) == 1024 + 2 * tokens.size
    header = np.frombuffer(raw[:1024], dtype="<i4")
    assert header[:3].tolist() == [20240520, 1, tokens.size] and not header[3:].any()
    assert np.frombuffer(raw[1024:], dtype="<u2").tolist() == tokens.tolist()
    back = read_shard(path)
    assert back.dtype == np.uint16 and back.tolist() == tokens.tolist()


def test_empty_shard_round_trips(tmp_path):
    assert read_shard(write_shard(tmp_path / "e.bin", np.zeros(0, np.uint16))).size == 0


@pytest.mark.parametrize("bad", [[65536], [-1], [1.5]])
def test_write_rejects_ids_outside_uint16(tmp_path, bad):
    with pytest.raises(GolfError, match="0, 65535"):
        write_shard(tmp_path / "s.bin", np.array(bad))
    assert not (tmp_path / "s.bin").exists()


def _corrupt(path, kind):
    raw = bytearray(path.read_bytes())
    if kind == "magic":
        raw[0:4] = np.int32(12345).tobytes()
    elif kind == "version":
        raw[4:8] = np.int32(2).tobytes()
    elif kind == "truncated":
        raw = raw[:-2]
    elif kind == "oversized":
        raw += b"\0\0"
    elif kind == "header":
        raw = raw[:500]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "kind, message",
    [
        ("magic", "not a token shard"),
        ("version", "unsupported shard version 2"),
        ("truncated", "does not match the header's 4 tokens"),
        ("oversized", "does not match the header's 4 tokens"),
        ("header", "shorter than the 1024-byte shard header"),
    ],
)
def test_malformed_shards_name_the_file(tmp_path, kind, message):
    path = write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(4))
    _corrupt(path, kind)
    with pytest.raises(GolfError, match=message) as err:
        read_shard(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_folder_is_not_a_shard(tmp_path):
    with pytest.raises(GolfError, match="not a file"):
        read_shard(tmp_path)


def test_list_shards_sorts_and_refuses_an_empty_match(tmp_path):
    for name in ["b_000001.bin", "b_000000.bin", "b_000010.bin"]:
        write_shard(tmp_path / name, np.arange(3))
    assert [p.name for p in list_shards(tmp_path / "b_*.bin")] == ["b_000000.bin", "b_000001.bin", "b_000010.bin"]
    with pytest.raises(GolfError, match="no shards match"):
        list_shards(tmp_path / "nothing_*.bin")


def test_validation_tokens_concatenate_sorted_and_truncate(tmp_path):
    # 8,300 tokens over two shards, written out of order: usable = floor(8299 / 128) * 128 = 8192.
    stream = np.arange(8300) % 1000
    write_shard(tmp_path / "fineweb_val_000001.bin", stream[5000:])
    write_shard(tmp_path / "fineweb_val_000000.bin", stream[:5000])
    val = load_validation_tokens(tmp_path / "fineweb_val_*.bin", 128)
    assert val.dtype == torch.int64 and val.numel() == 8193
    assert torch.equal(val, torch.from_numpy(stream[:8193]))
    # N - 1 already a multiple of L: nothing is dropped.
    write_shard(tmp_path / "fineweb_val_000001.bin", stream[5000:8193])
    assert load_validation_tokens(tmp_path / "fineweb_val_*.bin", 128).numel() == 8193
    with pytest.raises(GolfError, match="too few for one sequence"):
        load_validation_tokens(tmp_path / "fineweb_val_*.bin", 8193)


def test_token_stream_reads_in_order_and_wraps(tmp_path):
    write_shard(tmp_path / "t_000000.bin", np.arange(0, 10))
    write_shard(tmp_path / "t_000001.bin", np.zeros(0))
    write_shard(tmp_path / "t_000002.bin", np.arange(10, 15))
    stream = TokenStream(tmp_path / "t_*.bin")
    assert stream.take(7).tolist() == list(range(7))
    assert stream.take(10).tolist() == [7, 8, 9, 10, 11, 12, 13, 14, 0, 1]
    assert stream.take(0).size == 0


def _position_shards(folder, n_tokens, shard_tokens):
    """Shards whose token at stream position i is i (so a token tells where it came from)."""
    positions = np.arange(n_tokens)
    for index, start in enumerate(range(0, n_tokens, shard_tokens)):
        write_shard(folder / f"fineweb_train_{index:06d}.bin", positions[start : start + shard_tokens])
    return str(folder / "fineweb_train_*.bin")


def test_loader_rank_slices_are_disjoint_deterministic_and_the_stream_in_order(tmp_path):
    pattern = _position_shards(tmp_path, 3000, 700)  # batches cross shard ends and wrap at 3000
    world, seq_len, accum, global_tokens = 3, 16, 2, 3 * 2 * 64  # 64 tokens = 4 sequences per rank
    loaders = [DistributedTokenLoader(pattern, rank, world) for rank in range(world)]
    replay = DistributedTokenLoader(pattern, 1, world)
    reference = TokenStream(pattern)
    for _ in range(12):
        batches = [loader.next_batch(global_tokens, seq_len, accum) for loader in loaders]
        chunk = reference.take(world * 65)
        seen = set()
        for rank, (x, y) in enumerate(batches):
            assert x.shape == y.shape == (4, seq_len) and x.dtype == y.dtype == torch.int64
            span = chunk[rank * 65 : (rank + 1) * 65].astype(np.int64)
            assert x.flatten().tolist() == span[:-1].tolist() and y.flatten().tolist() == span[1:].tolist()
            assert seen.isdisjoint(x.flatten().tolist())
            seen.update(x.flatten().tolist())
        x1, y1 = replay.next_batch(global_tokens, seq_len, accum)
        assert torch.equal(x1, batches[1][0]) and torch.equal(y1, batches[1][1])


def test_loader_rejects_bad_geometry(tmp_path):
    pattern = _position_shards(tmp_path, 100, 100)
    with pytest.raises(GolfError, match="not a positive multiple of seq_len"):
        DistributedTokenLoader(pattern, 0, 2).next_batch(100, 16, 1)
    with pytest.raises(GolfError, match="not in a world"):
        DistributedTokenLoader(pattern, 2, 2)
