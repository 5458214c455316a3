"""The expert system's REST API (docs/server.md): the BES protocol MXCuBE speaks (``/RUN``,
``/STATUS``, ``/ABORT``), the sample queue and monitoring under ``/api/v1`` with a bearer
token, and a server-sent event stream; ``bes serve`` runs it on the station.

Modules: ``app`` (app factory), ``auth`` (token, guards), ``bes_protocol`` (BES routes),
``mxcube_body`` (start body -> run inputs), ``runs`` (BES runs), ``callbacks`` (XML-RPC to
MXCuBE), ``messages`` (engine events in words), ``queue_routes``, ``monitor_routes``,
``events_stream`` (SSE), ``server`` (life cycle), ``cli`` (``bes serve``).
"""
