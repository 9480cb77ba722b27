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
   field of the five kinds below;
3. **a feature set** in `fraud.features`: feature definitions whose inputs are the contract's
   ``feature_sets[name]``.

What a Sparkov contract needs (the card transactions of Kaggle ``kartik2112/fraud-detection``; samples in
``samples/sparkov/``): the header is ``,trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,
street,city,state,zip,lat,long,city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,is_fraud``.

- fields the model already expresses: ``amt`` (number, low 0), ``category`` (category of 14 sorted choices,
  ``entertainment`` … ``travel``), ``cc_num``, ``merchant`` and ``trans_num`` (identifiers; ``cc_num`` is digits
  but an id, so text, not an integer), ``unix_time`` (integer, the time column), ``lat``/``long``/``merch_lat``/
  ``merch_long`` (numbers with ``low=-180, high=180``, latitudes ±90), ``city_pop`` (integer ≥ 0),
  ``is_fraud`` (flag, the label), ``gender`` (category ``F``/``M``);
- free text (``first``, ``last``, ``street``, ``city``, ``job``) fits ``identifier`` (non-empty, bounded length)
  but is personal data: it would be declared ``decision_time=True`` yet left out of every feature set, and the
  identity would be ``cc_num``, ``merchant``, ``amt``, ``unix_time`` and ``category``;
- two things the model does not have yet: a ``timestamp`` kind (``trans_date_trans_time``, ``dob``: text in
  ``YYYY-MM-DD[ HH:MM:SS]``, canonical ``timestamp[s]``/``date32``; the API, the decoder and the pyfunc signature
  each need one more branch for it), and the file's unnamed first column (a row index), which the Sparkov adapter
  drops before validation (an adapter-level ``ignored_columns``), so the contract's columns are not the file's;
- its feature set derives hour and day from ``unix_time`` (PaySim's ``step % 24`` is PaySim's convention, kept in
  `fraud.contracts.paysim`), the distance between ``lat/long`` and ``merch_lat/merch_long``, and the age at
  ``unix_time`` from ``dob``; the reasons' nouns come from the new fields' ``noun``.
"""

from fraud.contracts.model import Field, FieldKind, TransactionContract
from fraud.contracts.paysim import PAYSIM

CONTRACTS: dict[str, TransactionContract] = {PAYSIM.name: PAYSIM}
"""Every declared dataset, by name."""

__all__ = ["CONTRACTS", "PAYSIM", "Field", "FieldKind", "TransactionContract"]
