"""OpenAI-compatible HTTP server over one loaded model: `edgegen serve` (see docs/server.md)."""
