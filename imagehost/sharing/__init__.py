"""Sharing: the public share page of an image (`/v/<id>`) with its link previews
(OpenGraph, Twitter card, oEmbed), and each user's embed settings and default expiry."""
