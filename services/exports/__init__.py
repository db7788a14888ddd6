"""De-identified (HIPAA Safe Harbor) study exports."""
