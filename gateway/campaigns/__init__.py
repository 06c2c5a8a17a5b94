"""Campaigns: audiences and branches written as rules, journeys, schedules, experiments."""
