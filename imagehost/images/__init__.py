"""Images: uploads (streamed and presigned), listing, serving, deleting, the sweep."""
