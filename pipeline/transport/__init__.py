"""Transport: the embedded broker, topics and the wire codec."""
