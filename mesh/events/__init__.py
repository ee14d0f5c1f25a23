"""The event backbone: transactional outbox, relay, consumers with inbox, dead letters.

Two transports share these semantics: RabbitMQ (production) and an embedded bus in
PostgreSQL that needs no broker (`make run`, newcomers' tests).
"""
