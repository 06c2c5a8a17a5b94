"""Switchboard: an asyncio gateway between a contact center's PBX, SMS, email and CRM."""

__version__ = "0.1.0"
