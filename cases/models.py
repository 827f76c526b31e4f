"""The case domain: intake reports (RIUs), cases and their investigations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class CaseStatus(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    IN_REVIEW = "in_review", "In review"
    CLOSED = "closed", "Closed"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Priority(models.TextChoices):
    P1 = "p1", "P1 — urgent"
    P2 = "p2", "P2 — high"
    P3 = "p3", "P3 — normal"
    P4 = "p4", "P4 — low"


class IntakeChannel(models.TextChoices):
    HOTLINE = "hotline", "Hotline"
    WEB = "web", "Web form"
    EMAIL = "email", "Email"
    WALK_IN = "walk_in", "Walk-in"
    OTHER = "other", "Other"


class Outcome(models.TextChoices):
    NONE = "", "—"
    DISCIPLINARY = "disciplinary_action", "Disciplinary action"
    TERMINATION = "termination", "Termination"
    TRAINING = "training", "Training"
    POLICY_CHANGE = "policy_change", "Policy change"
    NO_ACTION = "no_action", "No action"
    REFERRED = "referred", "Referred to authorities"


class InvestigationStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    ON_HOLD = "on_hold", "On hold"
    CLOSED = "closed", "Closed"


class Finding(models.TextChoices):
    NONE = "", "—"
    SUBSTANTIATED = "substantiated", "Substantiated"
    UNSUBSTANTIATED = "unsubstantiated", "Unsubstantiated"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class RIUType(models.TextChoices):
    HOTLINE_REPORT = "hotline_report", "Hotline report"
    WEB_REPORT = "web_report", "Web report"
    EMAIL_REPORT = "email_report", "Email report"
    MANAGER_REFERRAL = "manager_referral", "Manager referral"
    AUDIT_FINDING = "audit_finding", "Audit finding"


class ReporterRelationship(models.TextChoices):
    EMPLOYEE = "employee", "Employee"
    FORMER_EMPLOYEE = "former_employee", "Former employee"
    CONTRACTOR = "contractor", "Contractor"
    VENDOR = "vendor", "Vendor"
    CUSTOMER = "customer", "Customer"
    ANONYMOUS = "anonymous", "Anonymous / unknown"


class RIU(models.Model):
    """Risk intelligence unit: the intake report a case was opened from."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="rius")
    reference = models.CharField(max_length=32)
    riu_type = models.CharField(max_length=32, choices=RIUType.choices)
    received_at = models.DateTimeField()
    reporter_relationship = models.CharField(max_length=32, choices=ReporterRelationship.choices)
    language = models.CharField(max_length=8, default="en")
    is_anonymous = models.BooleanField(default=False)
    custom_fields = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "RIU"
        verbose_name_plural = "RIUs"
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["organization", "reference"], name="riu_unique_reference")]

    def __str__(self) -> str:
        return self.reference


class Case(models.Model):
    """A compliance case: one row of the flat file."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="cases")
    reference = models.CharField(max_length=32, help_text="CASE-2026-000123, unique per organization.")
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.NEW)
    category = models.CharField(max_length=64)
    subcategory = models.CharField(max_length=64, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    priority = models.CharField(max_length=4, choices=Priority.choices, default=Priority.P3)
    intake_channel = models.CharField(max_length=16, choices=IntakeChannel.choices, default=IntakeChannel.HOTLINE)
    business_unit = models.CharField(max_length=64, blank=True)
    department = models.CharField(max_length=64, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=32, blank=True)
    site = models.CharField(max_length=64, blank=True)
    reported_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_cases"
    )
    is_anonymous = models.BooleanField(default=False)
    outcome = models.CharField(max_length=32, choices=Outcome.choices, blank=True)
    is_substantiated = models.BooleanField(null=True, blank=True)
    financial_impact = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="USD")
    risk_score = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0–100")
    retaliation_alleged = models.BooleanField(default=False)
    involves_management = models.BooleanField(default=False)
    legal_hold = models.BooleanField(default=False)
    escalated = models.BooleanField(default=False)
    policy_reference = models.CharField(max_length=64, blank=True)
    closure_reason = models.CharField(max_length=200, blank=True)
    source_system = models.CharField(max_length=32, blank=True, default="dossier")
    external_reference = models.CharField(max_length=64, blank=True)
    primary_riu = models.OneToOneField(RIU, null=True, blank=True, on_delete=models.SET_NULL, related_name="case")
    custom_fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "reference"], name="case_unique_reference"),
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in CaseStatus]), name="case_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(severity__in=[s.value for s in Severity]), name="case_severity_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="case_org_created_idx"),
            models.Index(fields=["organization", "status", "created_at"], name="case_org_status_idx"),
            models.Index(fields=["organization", "category"], name="case_org_category_idx"),
            models.Index(fields=["organization", "severity"], name="case_org_severity_idx"),
            models.Index(fields=["organization", "business_unit"], name="case_org_bu_idx"),
            models.Index(fields=["organization", "closed_at"], name="case_org_closed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} — {self.title}"


class Investigation(models.Model):
    """An investigation of a case (0..n per case, numbered from 1)."""

    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="investigations"
    )
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="investigations")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=InvestigationStatus.choices, default=InvestigationStatus.OPEN)
    investigator = models.CharField(max_length=150, blank=True)
    allegation_type = models.CharField(max_length=64)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    finding = models.CharField(max_length=16, choices=Finding.choices, blank=True)
    actions_taken = models.TextField(blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["case_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["case", "number"], name="investigation_unique_number"),
        ]
        indexes = [models.Index(fields=["organization", "opened_at"], name="inv_org_opened_idx")]

    def __str__(self) -> str:
        return f"{self.case_id} #{self.number}"


class PartyRole(models.TextChoices):
    REPORTER = "reporter", "Reporter"
    SUBJECT = "subject", "Subject"
    WITNESS = "witness", "Witness"


#: The export column whose pseudonym stands in for a party's identifying field, by field and
#: role: the identity columns exports have (``exports.columns`` checks each against it), the
#: pseudonyms stored on parties for them and what the admin shows. Any other value is hidden
#: rather than given a pseudonym under another column, which would link a witness or subject
#: to the same person as a reporter (pseudonyms differ between columns on purpose).
PARTY_PSEUDONYM_COLUMNS: dict[str, dict[str, str]] = {
    "full_name": {"reporter": "reporter_name", "subject": "subject_names", "witness": "witness_names"},
    "email": {"reporter": "reporter_email"},
    "phone": {"reporter": "reporter_phone"},
    "employee_id": {"subject": "subject_employee_ids"},
}


class Party(models.Model):
    """A person involved in a case: its reporter (none when the report is anonymous), a
    subject of the allegations, or a witness. Their identity is pseudonymised in exports
    unless a member with identity access reveals it for a stated reason."""

    organization = models.ForeignKey("organizations.Organization", on_delete=models.CASCADE, related_name="parties")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="parties")
    role = models.CharField(max_length=16, choices=PartyRole.choices)
    full_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    employee_id = models.CharField(max_length=40, blank=True)
    job_title = models.CharField(max_length=120, blank=True)
    # Pseudonyms made ahead for exports (``exports.party_pseudonyms``): each
    # identifying field's, under the export column the party's role puts it in (None: blank,
    # or no such column). Valid only while ``pseudonym_stamp`` is the organization's current
    # stamp; a change to the role or to any of these fields clears the stamp (a trigger,
    # on PostgreSQL and SQLite).
    pseudonym_stamp = models.CharField(max_length=32, blank=True, db_default="", editable=False)
    pseudonym_full_name = models.CharField(max_length=14, null=True, blank=True, editable=False)
    pseudonym_email = models.CharField(max_length=14, null=True, blank=True, editable=False)
    pseudonym_phone = models.CharField(max_length=14, null=True, blank=True, editable=False)
    pseudonym_employee_id = models.CharField(max_length=14, null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "parties"
        ordering = ["case_id", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=[r.value for r in PartyRole]), name="party_role_valid"),
        ]
        indexes = [models.Index(fields=["case", "role"], name="party_case_role_idx")]

    def __str__(self) -> str:
        return f"{self.get_role_display()} of {self.case_id}"
