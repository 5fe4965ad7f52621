"""Durable background jobs: rows in the database claimed by face workers under a lease."""
