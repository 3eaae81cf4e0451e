"""Running as a service: daemon loop, scheduler, workers, health checks, status, metrics."""
