"""Selfies: upload with synchronous face checks, matching status, the guest's photos."""
