"""No training/serving skew: the predictor's answers equal the registered pyfunc model's on genuine PaySim rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import requests
from kserve import InferenceGRPCClient, InferInput, InferRequest

from fraud import schema
from fraud.settings import Settings
from pipelines.runner import PipelineOutcome
from serving.process import PredictorProcess

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def genuine(genuine_csv: Path) -> pd.DataFrame:
    """1,000 rows of the published PaySim log spread over its first nine hours, decision-time fields only."""
    frame = pd.read_csv(genuine_csv)
    every = max(1, len(frame) // 1000)
    return frame.iloc[::every].head(1000)[list(schema.DECISION_TIME_FIELDS)].reset_index(drop=True)


@pytest.fixture(scope="module")
def pyfunc_answer(stack: Settings, served_model: PipelineOutcome, genuine: pd.DataFrame) -> pd.DataFrame:
    model = mlflow.pyfunc.load_model(f"models:/{stack.model_name}/{served_model.version}")
    answer: pd.DataFrame = model.predict(genuine)
    return answer


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} | {"step": int(row["step"])} for row in frame.to_dict(orient="records")]


def test_v1_probabilities_and_decisions_equal_the_registered_pyfunc(
    server: PredictorProcess, genuine: pd.DataFrame, pyfunc_answer: pd.DataFrame
) -> None:
    response = requests.post(server.v1_url, json={"instances": records(genuine)}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    served = np.array([p["fraud_probability"] for p in predictions])
    np.testing.assert_allclose(served, pyfunc_answer["fraud_probability"].to_numpy(), rtol=0, atol=1e-12)
    assert [p["decision"] for p in predictions] == pyfunc_answer["decision"].tolist()
    assert served.std() > 0, "the rows are scored differently, not all alike"


def test_single_transactions_v2_and_grpc_agree_too(
    server: PredictorProcess, genuine: pd.DataFrame, pyfunc_answer: pd.DataFrame
) -> None:
    sample = genuine.iloc[::50]
    expected = pyfunc_answer["fraud_probability"].to_numpy()[::50]
    singles = [
        requests.post(server.v1_url, json={"instances": [row]}, timeout=10).json()["predictions"][0][
            "fraud_probability"
        ]
        for row in records(sample)
    ]
    np.testing.assert_allclose(singles, expected, rtol=0, atol=1e-12)
    columns = {
        "step": ("INT64", sample["step"].astype("int64").tolist()),
        "type": ("BYTES", sample["type"].tolist()),
        "amount": ("FP64", sample["amount"].astype("float64").tolist()),
        "nameOrig": ("BYTES", sample["nameOrig"].tolist()),
        "nameDest": ("BYTES", sample["nameDest"].tolist()),
    }
    body = {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [len(values)], "data": values}
            for name, (datatype, values) in columns.items()
        ]
    }
    outputs = {o["name"]: o["data"] for o in requests.post(server.v2_url, json=body, timeout=30).json()["outputs"]}
    np.testing.assert_allclose(outputs["fraud_probability"], expected, rtol=0, atol=1e-12)

    async def grpc_scores() -> list[float]:
        inputs = []
        for name, (datatype, values) in columns.items():
            tensor = InferInput(name, [len(values)], datatype)
            array = np.array(values, dtype=object) if datatype == "BYTES" else np.array(values)
            tensor.set_data_from_numpy(array, binary_data=True)  # raw_input_contents, the binary gRPC path
            inputs.append(tensor)
        client = InferenceGRPCClient(server.grpc_target, timeout=30)
        try:
            answer = await client.infer(InferRequest("fraud-detector", inputs))
        finally:
            await client.close()
        scores: list[float] = answer.get_output_by_name("fraud_probability").as_numpy().tolist()
        return scores

    np.testing.assert_allclose(asyncio.run(grpc_scores()), expected, rtol=0, atol=1e-12)
