-- Expiring uploads: an upload may ask to be deleted after a while. The pending row
-- carries the asked lifetime; activation turns it into `expires_at`, which for an active
-- row is when the image is gone (NULL: never). The sweep's index (status, expires_at)
-- finds both kinds of expired rows.
ALTER TABLE images ADD COLUMN expire_after_seconds INTEGER NULL;
