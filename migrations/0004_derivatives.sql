-- The image pipeline: every image has a thumbnail (WebP, longest side at most 640 px)
-- and, when the original is larger than 2048 px or must be turned upright, a display
-- size. Their keys are on the row (recorded before the objects are written) and go with
-- it. pipeline_version 1: metadata stripped and every derivative made; 0: an image stored
-- before the pipeline existed, or one whose display is still being made — the work list
-- of `imagehost derivatives`, which counts its attempts in pipeline_attempts.
ALTER TABLE images ADD COLUMN thumb_key VARCHAR(255) NULL;
ALTER TABLE images ADD COLUMN display_key VARCHAR(255) NULL;
ALTER TABLE images ADD COLUMN thumb_width INTEGER NULL;
ALTER TABLE images ADD COLUMN thumb_height INTEGER NULL;
ALTER TABLE images ADD COLUMN animated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE images ADD COLUMN pipeline_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE images ADD COLUMN pipeline_attempts INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX ux_images_thumb_key ON images (thumb_key);
CREATE UNIQUE INDEX ux_images_display_key ON images (display_key);
CREATE INDEX ix_images_pipeline ON images (pipeline_version, status);
