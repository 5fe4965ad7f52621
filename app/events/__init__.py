"""Events: event codes, organizer event management, guest memberships."""
