-- Albums, and the filename search. Portable SQL: it applies unchanged to SQLite and PostgreSQL.
--
-- An album is its owner's list of images: an image may be in several albums; deleting an
-- album never deletes its images, and deleting an image takes it out of every album (the
-- album_images rows go with the image row, by the foreign key). The cover is the image the
-- owner chose, or, when none is chosen (or it is gone), the album's newest image.
CREATE TABLE albums (
    id VARCHAR(32) PRIMARY KEY,
    owner_id VARCHAR(32) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title VARCHAR(200) NOT NULL,
    description VARCHAR(2000) NOT NULL DEFAULT '',
    visibility VARCHAR(10) NOT NULL CHECK (visibility IN ('private', 'unlisted', 'public')),
    password_hash VARCHAR(100) NULL,
    cover_image_id VARCHAR(32) NULL REFERENCES images (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Newest-first keyset listing of a user's albums.
CREATE INDEX ix_albums_owner_listing ON albums (owner_id, created_at, id);

CREATE TABLE album_images (
    album_id VARCHAR(32) NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    image_id VARCHAR(32) NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (album_id, image_id)
);

-- An image's albums (and the cascade when the image goes).
CREATE INDEX ix_album_images_image ON album_images (image_id);

-- The filename search: the words of each filename (case-folded, split at anything that is
-- not a letter or digit), so `?q=` finds an image by the start of any word of its name
-- through an index range scan, whatever the number of images. Written when the image
-- becomes active, with the image's (then final) created_at and expires_at, so a search
-- sorts and counts its matches from this index alone; they go with the image's row.
-- prev_word is the image's word before this one in sorted order ('' for the first): the
-- words of an image starting with a prefix are consecutive in that order, so the first
-- of them is the one whose prev_word does not start with it, and a search counts each
-- image once without DISTINCT.
CREATE TABLE image_words (
    image_id VARCHAR(32) NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    owner_id VARCHAR(32) NOT NULL,
    word VARCHAR(255) NOT NULL,
    prev_word VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NULL,
    PRIMARY KEY (image_id, word)
);

CREATE INDEX ix_image_words_search ON image_words (owner_id, word, created_at, image_id, expires_at, prev_word);

-- Images stored before this migration: their whole lower-cased name is one word, so they
-- are found by the start of their filename (what plain SQL can split on both databases).
INSERT INTO image_words (image_id, owner_id, word, prev_word, created_at, expires_at)
SELECT id, owner_id, LOWER(SUBSTR(filename, 1, 255)), '', created_at, expires_at FROM images WHERE status = 'active';
