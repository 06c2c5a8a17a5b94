"""Every table of the domain, importable from one place (Alembic reads Base.metadata)."""

from gateway.core.db.models.base import Base
from gateway.core.db.models.calls import AmiRawEvent, Call, CallLeg
from gateway.core.db.models.campaigns import (
    Campaign,
    CampaignVersion,
    DailySnapshot,
    Enrollment,
    ExperimentAssignment,
)
from gateway.core.db.models.contacts import (
    CostEntry,
    CostLedgerHour,
    OutboundContact,
    Task,
    Template,
)
from gateway.core.db.models.crm import ApiToken, EntityVersion, OutboxItem, ProcessedWebhook
from gateway.core.db.models.customers import (
    CUSTOMER_STATUSES,
    Activity,
    Complaint,
    Customer,
    CustomerPhone,
    DoNotContact,
    Payment,
    StatusChange,
)
from gateway.core.db.models.people import Agent, AgentExtension, AllocationRun, Partner

__all__ = [
    "CUSTOMER_STATUSES",
    "Activity",
    "Agent",
    "AgentExtension",
    "AllocationRun",
    "AmiRawEvent",
    "ApiToken",
    "Base",
    "Call",
    "CallLeg",
    "Campaign",
    "CampaignVersion",
    "Complaint",
    "CostEntry",
    "CostLedgerHour",
    "Customer",
    "CustomerPhone",
    "DailySnapshot",
    "DoNotContact",
    "Enrollment",
    "EntityVersion",
    "ExperimentAssignment",
    "OutboundContact",
    "OutboxItem",
    "Partner",
    "Payment",
    "ProcessedWebhook",
    "StatusChange",
    "Task",
    "Template",
]
