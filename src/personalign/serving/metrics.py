"""The server's Prometheus metrics (prometheus-client), in a registry of their own so that two apps in one process
(tests) never share counters. Names follow vLLM's where the meaning is the same."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# seconds: a CPU step is tens of milliseconds, a queued first token can take many seconds
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("personalign_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=self.registry)
        self.running = Gauge("personalign_num_requests_running", "requests decoding now", registry=self.registry)
        self.waiting = Gauge("personalign_num_requests_waiting", "requests waiting for a place in the batch",
                             registry=self.registry)
        self.cancelled = Counter("personalign_requests_cancelled", "requests whose client went away mid-answer",
                                 registry=self.registry)
        self.prompt_tokens = Counter("personalign_prompt_tokens", "prompt tokens of answered requests (as the "
                                     "base model read them, templates included)", registry=self.registry)
        self.generation_tokens = Counter("personalign_generation_tokens", "tokens generated",
                                         registry=self.registry)
        self.time_to_first_token = Histogram("personalign_time_to_first_token_seconds", "arrival to first token",
                                             buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.inter_token_latency = Histogram("personalign_inter_token_latency_seconds",
                                             "time between a request's consecutive tokens",
                                             buckets=_LATENCY_BUCKETS, registry=self.registry)

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
