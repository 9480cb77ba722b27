"""The write-ahead log on its own (no servers): group commit, segments, torn tails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from monitoring.collector.events import Envelope, decode_group, encode
from monitoring.collector.wal import WriteAheadLog, frame, group_record, iter_records, list_segments, read_frames

GROUP = msgspec.msgpack.Decoder(list[bytes])


def test_concurrent_appends_share_fsyncs_and_come_back_in_order(tmp_path: Path) -> None:
    durable: list[int] = []
    segments: list[int] = []
    failed: list[int] = []

    async def run() -> int:
        landed = asyncio.Event()

        def on_durable(items: list[int], segment: int) -> None:
            durable.extend(items)
            segments.extend([segment] * len(items))
            if len(durable) % 100 == 0:
                landed.set()

        wal = WriteAheadLog(tmp_path, 64 * 1024, on_durable, lambda items, _: failed.extend(items))
        wal.open(0)
        for start in range(0, 2000, 100):  # 20 bursts of 100 concurrent appends
            landed.clear()
            for seq in range(start, start + 100):
                wal.append(seq, msgspec.msgpack.encode(b"event-%06d" % seq * 50), seq)
            while len(durable) < start + 100:
                await landed.wait()
                landed.clear()
        await wal.close()
        return wal.groups

    groups = asyncio.run(run())
    assert not failed
    assert durable == list(range(2000)), "everything is reported durable, in order"
    assert segments == sorted(segments), "a later record never lands in an earlier segment"
    assert groups < 2000, "concurrent appends were committed in groups"
    files = list_segments(tmp_path)
    assert len(files) > 1, "the log moved to new segments past segment_bytes (a group is never split)"
    assert files[0].id == 0
    groups_read = [GROUP.decode(record) for _, record in iter_records(files)]
    assert len(groups_read) == groups, "one record per group"
    payloads = [payload for group in groups_read for payload in group]
    assert payloads == [b"event-%06d" % seq * 50 for seq in range(2000)]


def test_a_torn_or_corrupt_tail_is_ignored_and_what_precedes_it_kept() -> None:
    records = [b"first", b"second", b"third"]
    data = b"".join(frame(r) for r in records)

    def read(data: bytes) -> tuple[list[bytes], int]:
        views, used = read_frames(data)
        return [bytes(view) for view in views], used

    assert read(data) == (records, len(data))
    torn = data + frame(b"fourth")[:-2]  # the process died while writing the fourth
    assert read(torn) == (records, len(data))
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF  # a flipped bit in the third record's payload
    assert read(bytes(corrupt))[0] == records[:2]


def test_records_hold_a_group_or_a_single_envelope_as_earlier_collectors_wrote_them() -> None:
    def envelope(seq: int) -> Envelope:
        return Envelope(seq, 0, f"id-{seq}", 1.0, None, None, None, None, None, None, None, b"{}")

    data = frame(encode(envelope(0))) + frame(group_record([encode(envelope(1)), encode(envelope(2))]))
    records, used = read_frames(data)
    assert used == len(data) and len(records) == 2
    assert [e.seq for record in records for e in decode_group(record)] == [0, 1, 2]
    assert decode_group(records[1])[0].key == 0, "a record without its dedup key decodes with key 0 (computed later)"
