"""The inference-log collector: KServe payload-logger CloudEvents in, durable and joined, Parquet out.

| module | holds |
|---|---|
| `events.py` | the CloudEvent checks (binary mode) and the envelope kept in the write-ahead log |
| `payloads.py` | lenient msgspec types of V1/V2 request and response bodies |
| `wal.py` | the write-ahead log: group commit (one synchronous write per group), segments, torn-tail reading |
| `journal.py` | the flush journal (intent, commit): events reach the store exactly once across crashes |
| `keys.py` | the duplicate filter across restarts (keys of retired segments as sorted arrays) |
| `rows.py` | joined events → inference-log and label rows, grouped by partition |
| `service.py` | `Collector`: dedupe → log → join → flush, and recovery at start |
| `app.py` | the raw ASGI HTTP API (events, labels, flush, status, metrics, health) |
| `metrics.py` | Prometheus metrics |
| `process.py` | `CollectorProcess`: run one as a child process (tests, benchmarks) |

Run it with ``python -m monitoring.collector`` (`fraudctl up` does).
"""
