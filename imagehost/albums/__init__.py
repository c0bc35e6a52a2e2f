"""Albums: a user's lists of images, with a page to share them (`/a/<id>`)."""
