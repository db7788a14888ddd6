"""The roles a membership can grant inside a community."""

from django.db import models


class Role(models.TextChoices):
    """A member's role in one community; access rules per role live in policy, not here."""

    OWNER = "owner", "Owner"
    PRINCIPAL_INVESTIGATOR = "principal_investigator", "Principal investigator"
    COORDINATOR = "coordinator", "Coordinator"
    RESEARCHER = "researcher", "Researcher"
    AUDITOR = "auditor", "Auditor"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
