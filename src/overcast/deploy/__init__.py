"""Deployment: the provider-neutral model of an app on a target (:mod:`.model`), its
reproducible package (:mod:`.package`), the plan a cloud's family renders from them
(:mod:`.plan`) and running Terraform or OpenTofu on it (:mod:`.terraform`)."""
