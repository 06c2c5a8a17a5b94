"""Business view of the ways to reach a customer: sms, email, voice."""
