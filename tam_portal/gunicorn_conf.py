"""gunicorn settings for the deployment (README "Deployment"):
`gunicorn -c python:tam_portal.gunicorn_conf tam_portal.wsgi -w 4 ...`

With PROMETHEUS_MULTIPROC_DIR set, every worker writes its metrics to files there and /metrics
merges them; a worker that exits is marked dead so its gauges stop counting.
"""

import os


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
