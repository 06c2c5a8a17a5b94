"""The CRM boundary: signed webhooks in, the push-back outbox, CSV import, matching."""
