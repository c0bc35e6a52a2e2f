"""Accounts: users, passwords, sessions, JWTs, API keys, login throttling."""
