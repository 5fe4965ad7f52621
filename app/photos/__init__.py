"""Event photos: organizer bulk upload, indexing status, authorized serving."""
