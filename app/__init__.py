"""Event photo finder: guests find the event photos they appear in from one selfie."""
