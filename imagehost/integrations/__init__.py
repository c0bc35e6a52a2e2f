"""Screenshot tools: the ShareX custom-uploader file and the Flameshot script."""
