"""Break-glass: time-boxed emergency access that the policy honours, flagged, notified and reviewed."""
