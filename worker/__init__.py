"""taskgrouper's workers: Celery app and tasks, and the job runner shared with the embedded executor."""
