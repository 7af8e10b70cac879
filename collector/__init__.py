"""The collector: validate, dedupe, quarantine and store readings from MQTT."""
