"""The write-ahead log on its own (no servers): group commit, segments, torn tails."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitoring.collector.wal import WriteAheadLog, frame, iter_records, list_segments, read_frames


def test_concurrent_appends_share_fsyncs_and_come_back_in_order(tmp_path: Path) -> None:
    durable: list[object] = []

    async def run() -> int:
        wal = WriteAheadLog(tmp_path, segment_bytes=64 * 1024, on_durable=lambda items, _: durable.extend(items))
        wal.open(0)
        segments: list[int] = []
        for start in range(0, 2000, 100):  # 20 bursts of 100 concurrent appends
            burst = [wal.append(seq, b"event-%06d" % seq * 50, seq) for seq in range(start, start + 100)]
            segments += await asyncio.gather(*burst)
        await wal.close()
        assert segments == sorted(segments), "a later record never lands in an earlier segment"
        return wal.groups

    groups = asyncio.run(run())
    assert durable == list(range(2000)), "everything is reported durable, in order, before its future settles"
    assert groups < 2000, "concurrent appends were committed in groups"
    segments = list_segments(tmp_path)
    assert len(segments) > 1, "the log moved to new segments past segment_bytes (a group is never split)"
    assert segments[0].id == 0
    payloads = [payload for _, payload in iter_records(segments)]
    assert payloads == [b"event-%06d" % seq * 50 for seq in range(2000)]


def test_a_torn_or_corrupt_tail_is_ignored_and_what_precedes_it_kept() -> None:
    records = [b"first", b"second", b"third"]
    data = b"".join(frame(r) for r in records)
    assert read_frames(data) == (records, len(data))
    torn = data + frame(b"fourth")[:-2]  # the process died while writing the fourth
    assert read_frames(torn) == (records, len(data))
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF  # a flipped bit in the third record's payload
    assert read_frames(bytes(corrupt))[0] == records[:2]
