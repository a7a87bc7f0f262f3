"""taskgrouper's service: FastAPI app, schemas, persistence, auth, settings."""
