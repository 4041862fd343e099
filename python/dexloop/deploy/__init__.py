"""Deployment: an exported policy drives a robot through the C++ control loop, in this process or
through a policy server (``dexloop deploy``)."""

from dexloop.deploy.deploy import DEPLOY_INFO_NAME, DeployConfig, deploy_main

__all__ = ["DEPLOY_INFO_NAME", "DeployConfig", "deploy_main"]
