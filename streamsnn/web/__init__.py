"""The live view: `view` (LiveView, the state it shows and the pipeline tap), `server` (HTTP/SSE with a connection
limit and deadlines), `frames` (pictures of events) and the page `index.html`, shipped as package data."""
