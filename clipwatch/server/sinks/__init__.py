"""Alert sinks: webhooks and MQTT brokers that receive every alert transition.

- payload.py: what a sink receives (the JSON, its signature) and the filters;
- worker.py: one delivery thread per sink, a durable outbox over the event store;
- webhook.py, mqtt.py: the two transports;
- manager.py: the service's sinks, added and removed at run time.
"""

from clipwatch.server.sinks.manager import (
    SinkConflict,
    SinkDisabled,
    SinkManager,
    SinkRefused,
    UnknownSink,
)

__all__ = ["SinkConflict", "SinkDisabled", "SinkManager", "SinkRefused", "UnknownSink"]
