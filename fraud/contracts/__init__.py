"""Transaction contracts: each dataset's transaction declared once, and every layer derives its rules from it.

``from fraud.contracts import PAYSIM`` gives the PaySim transaction: field names in the published order, each
field's kind, canonical Arrow type and domain (the step range, the transaction types, non-negative money, account
ids of at most 256 characters, 0/1 flags), which fields are known at decision time, which identity fields every
scoring request carries, which fields each feature set reads, the noun each field goes by in a sentence, and a
valid example. The consumers translate it, each into its own terms, and hold no rule of their own:

=============================================  ====================================================================
consumer                                       reads from the contract
=============================================  ====================================================================
file adapter (`fraud.data.adapters`)           header, canonical Arrow schema, per-field parsing and domain checks,
                                               which stored Parquet types are accepted
API validation (`serving.validation`)          decision-time fields, kinds → JSON / V2 datatypes, domains, nouns in
                                               messages, identity fields, example transaction
fast decoder (`serving.decoding`)              the same domains as msgspec constraints
pyfunc signature (`fraud.pyfunc_model`)        decision-time fields, kinds → MLflow column types
feature function (`fraud.features`)            each feature set's inputs, the category choices, post-transaction
                                               fields it may never read
reasons (`serving.reasons`)                    field nouns ("origin balance"), the time convention
=============================================  ====================================================================

`fraud.schema` is a thin view of `PAYSIM` kept for the data-generation code that speaks in PaySim constants.

Adding a dataset
----------------

A new dataset is three pieces, and no edit to validation, decoding, serving or the pipeline steps:

1. **a contract** here (``fraud/contracts/<name>.py``): a `TransactionContract` listing its fields;
2. **an adapter** in `fraud.data.adapters`: the published files' quirks (extra columns, text timestamps) turned
   into the contract's canonical batch; the default `DatasetAdapter.normalize` already parses and checks every
   field of the six kinds (`FieldKind`);
3. **a feature set** in `fraud.features`: feature definitions whose inputs are the contract's
   ``feature_sets[name]``.

The Sparkov card transactions (Kaggle ``kartik2112/fraud-detection``; samples in ``samples/sparkov/``) show it:
`SPARKOV` (``fraud/contracts/sparkov.py``) and `SparkovAdapter` (four lines: its header starts with an unnamed row
index, which it drops) are the first two pieces, and ``fraudctl data ingest --dataset sparkov`` validates and lands
its files. What it took and what remains:

- taken as the model had it: ``amt`` (number, low 0), ``category`` (14 sorted choices), ``gender`` (``F``/``M``),
  ``cc_num``, ``merchant``, ``trans_num`` (identifiers; ``cc_num`` is digits but an id, so text), ``unix_time``
  (integer, the time column), latitudes and longitudes (numbers within ±90 / ±180), ``city_pop`` (integer),
  ``is_fraud`` (flag, the label); free text (``first``, ``last``, ``street``, ``city``, ``job``) as bounded
  identifiers: personal data, decision-time but meant for no feature set;
- added to the model for it: the ``timestamp`` kind (``trans_date_trans_time`` as ``timestamp[s]``, ``dob`` as
  ``date32``), parsed and checked by the file adapter;
- remaining, the third piece: a feature set in `fraud.features` (hour and day from ``unix_time``, not PaySim's
  ``step % 24``; distance between ``lat/long`` and ``merch_lat/merch_long``; age at the transaction from ``dob``)
  declared in ``SPARKOV.feature_sets``; for serving, a ``timestamp`` branch in the API validation, the fast
  decoder and the pyfunc signature (`serving.validation` refuses, at import, a served contract with a kind it
  cannot check), and the predictor choosing its contract from the model version instead of importing `PAYSIM`.
"""

from fraud.contracts.model import Field, FieldKind, TransactionContract
from fraud.contracts.paysim import PAYSIM
from fraud.contracts.sparkov import SPARKOV

CONTRACTS: dict[str, TransactionContract] = {contract.name: contract for contract in (PAYSIM, SPARKOV)}
"""Every declared dataset, by name."""

__all__ = ["CONTRACTS", "PAYSIM", "SPARKOV", "Field", "FieldKind", "TransactionContract"]
