"""The users API on AWS Lambda: deploy this folder with the handler ``lambda_function.handler``.

HTTP requests from API Gateway, an ALB or a function URL reach the FastAPI app; the
``signups`` subscription's SQS messages and the hourly schedule's EventBridge events reach
their handlers. The resources are the ``aws`` target's in ``overcast.toml``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OVERCAST_TARGET", "aws")

from app import app

from overcast.providers.aws import lambda_handler

handler = lambda_handler(app)
