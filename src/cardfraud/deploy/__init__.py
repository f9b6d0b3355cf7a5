"""Deployment of the champion to AWS: SageMaker blue/green, teardown and cost.

Every command needs an explicit AWS target (see :mod:`cardfraud.deploy.aws`), so
nothing in this package reaches an AWS account by default.
"""
