-- Sharing (issue 13): each user's embed settings for their share pages (`/v/<id>`) and
-- link previews — a title template, a description, a site name and a colour; NULL means
-- the server's default — and the expiry their uploads get unless they ask for another
-- (`default_expiry_seconds`, NULL: none). The display size's real dimensions go on the
-- image row so `og:image:width/height` describe the file `og:image` points at (NULL for
-- a display made before this migration: the share page then points at the original).
ALTER TABLE users ADD COLUMN embed_title VARCHAR(200) NULL;
ALTER TABLE users ADD COLUMN embed_description VARCHAR(500) NULL;
ALTER TABLE users ADD COLUMN embed_site_name VARCHAR(100) NULL;
ALTER TABLE users ADD COLUMN embed_color VARCHAR(7) NULL;
ALTER TABLE users ADD COLUMN default_expiry_seconds INTEGER NULL;
ALTER TABLE images ADD COLUMN display_width INTEGER NULL;
ALTER TABLE images ADD COLUMN display_height INTEGER NULL;
