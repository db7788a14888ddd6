"""The accounting of disclosures as a workflow: requests, the copies provided, suspensions, off-platform entries."""
