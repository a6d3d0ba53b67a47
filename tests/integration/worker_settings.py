"""Settings for worker processes started by integration tests: production settings plus a test packaging gate
(the product never ships a gate that allows everything)."""

from config.settings import *  # noqa: F403

DOSSIER_PACKAGING_GATES = ["tests.exports.gates.allow"]
