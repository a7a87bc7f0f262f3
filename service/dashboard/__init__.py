"""The web dashboard and the offline API docs, served by the API app.

The dashboard's pages are static files (``static/``) whose scripts read everything from the API
itself with the user's API key (kept in the browser's ``sessionStorage`` and sent as
``Authorization: Bearer``), so the pages carry no data and need no authentication of their own. Its
charts are drawn by plotly.js from the installed ``plotly`` package; ``/docs`` and ``/redoc`` load
Swagger UI and ReDoc from the installed ``fastapi_offline`` package. Nothing comes from a CDN.
"""
