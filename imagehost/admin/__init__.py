"""The admin pages and API (/admin, /api/admin/...): instance figures, users, invites, the audit trail."""
