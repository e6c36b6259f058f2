"""rdslab: the offline lab behind the rds-lambda-lab course.

    import rdslab
    lab = rdslab.start()          # moto on 127.0.0.1, environment exported
    import boto3
    rds = boto3.client("rds")     # no endpoint argument: reaches the lab

Rooms: ``aws`` (moto endpoint), ``databases`` (real PostgreSQL servers per DB instance),
``extension`` (aws_commons/aws_lambda SQL), ``bridge`` (SQL -> Lambda), ``runtime`` (Lambda
handler execution), ``access`` (IAM and network checks), ``events`` (RDS event notifications),
``grading`` (exercise checks and gradebook), ``cli`` (``rdslab up|status|doctor|grade|bench``).
"""

from .config import ACCOUNT_ID, REGION, TIME
from .lab import Lab, current, start

__all__ = ["ACCOUNT_ID", "REGION", "TIME", "Lab", "current", "start"]
__version__ = "0.1.0"
