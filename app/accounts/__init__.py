"""Accounts: users (guests, organizers, admins), registration, login, tokens."""
