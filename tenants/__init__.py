"""Communities (tenants): public-schema models, their lifecycle and host resolution."""
