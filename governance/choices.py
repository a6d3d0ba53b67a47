from django.db import models


class RoleKey(models.TextChoices):
    SCIENTIST = "scientist", "Scientist"
    REVIEWER = "reviewer", "Reviewer"
    QA_APPROVER = "qa_approver", "QA approver"
    PI = "pi", "Principal investigator"
    OPERATOR = "operator", "Operator"
    COMPLIANCE = "compliance", "Compliance"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Administrator"


class Classification(models.TextChoices):
    PUBLIC = "Public", "Public"
    INTERNAL = "Internal", "Internal"
    CONFIDENTIAL = "Confidential", "Confidential"
    RESTRICTED = "Restricted", "Restricted"


class TemplateStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"
