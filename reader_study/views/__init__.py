"""Server-rendered pages: `reader` for readers, `manage` for those who design and run studies."""
