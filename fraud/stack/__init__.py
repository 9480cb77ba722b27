"""The local runtime's servers (SeaweedFS S3 + MLflow) as background processes on 127.0.0.1.

See `fraud.stack.local.LocalStack` for the lifecycle contract; the other modules are its parts.
"""

from fraud.stack.local import LocalStack
from fraud.stack.status import ServiceStatus, StackStatus

__all__ = ["LocalStack", "ServiceStatus", "StackStatus"]
