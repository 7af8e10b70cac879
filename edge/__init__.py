"""The edge agent: serial drivers, averaging, a durable outbox, MQTT publishing."""
