"""IAM documents the tests write again and again (as JSON text, ready for boto3)."""

from __future__ import annotations

import json


def trust(service: str = "lambda.amazonaws.com") -> str:
    """A trust policy that lets ``service`` assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def allow(action: str | list[str], resource: str = "*", effect: str = "Allow") -> str:
    """A permission policy of one statement."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": action, "Resource": resource}],
        }
    )
