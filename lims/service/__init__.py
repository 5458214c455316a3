"""The LIMS service: ISPyB tables in its own database behind an ISPyB-like REST API.

Run it with ``bes lims serve`` or, embedded, ``lims.service.embedded.start_embedded``."""
