"""Tests of policy/: the engines, enforcement, obligations, routes and the review tooling."""
