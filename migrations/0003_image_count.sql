-- Each user's number of active images, kept by the same statements that keep
-- storage_used_bytes, so the image list's `total` costs one row read, not a count.
ALTER TABLE users ADD COLUMN image_count INTEGER NOT NULL DEFAULT 0;
