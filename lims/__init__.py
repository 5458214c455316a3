"""ISPyB-like LIMS of mxbes: ``lims.service`` (REST app with its own database) and
``lims.client`` (the ``requests`` client bes uses, with a durable outbox). See docs/lims.md."""
