"""What leaves the monitor: Prometheus metrics (`metrics`) and alert events (`alerts`)."""
