"""Tests of security/audit/: staging, the sequencer, the live chain, exports, disclosures and the audit API."""
