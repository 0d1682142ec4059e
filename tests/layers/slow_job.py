"""A job kind for tests: ``steps`` steps of ``pause`` seconds, each reported; run as a worker.

``python tests/layers/slow_job.py`` runs a worker (settings from LANDECO_* variables) that
knows this kind, so that a test can kill it mid-job.
"""

from __future__ import annotations

import asyncio
import time

from layers.jobs import JobContext, JobQueue, job_kind


@job_kind("test_slow", zh="测试", en="Test")
def slow(ctx: JobContext, *, steps: int = 10, pause: float = 0.2) -> dict:
    """Count ``steps``, writing each into a file of the job's folder."""
    for i in range(steps):
        ctx.progress(i / steps, f"step {i + 1} of {steps}", force=True)
        (ctx.folder / "steps.txt").write_text(str(i + 1))
        time.sleep(pause)
    return {"file": "steps.txt", "media_type": "text/plain", "steps": steps}


def main() -> None:
    from layers.settings import Settings
    from layers.store.database import database_url, make_engine

    settings = Settings()
    url = database_url(settings)
    asyncio.run(JobQueue(settings, url).run_worker(make_engine(url, statement_timeout_ms=30_000)))


if __name__ == "__main__":
    main()
