"""Export commands; each that changes something takes --operator and records an audit event."""
