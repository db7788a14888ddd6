# Type stubs for the parts of django-tenants this project uses (it ships none).
