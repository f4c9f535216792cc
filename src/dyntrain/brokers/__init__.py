"""Loosely coupled events on a message broker (NATS JetStream or RabbitMQ).

Out: :class:`~.publisher.BrokerPublisher` publishes every project event as a CloudEvent
(``DYNTRAIN_EVENTS_URL``). In: :class:`~.ingest.IngestConsumer` applies data changes other
services send as CloudEvents (``DYNTRAIN_INGEST_URL``). Both need the ``events`` extra.
"""
