"""Server-rendered pages and their assets."""
