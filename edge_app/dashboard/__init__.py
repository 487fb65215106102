"""Local web dashboard served by `edge-app run --dashboard PORT` (issue 11).

``state.DashboardState`` is fed by the running app (events at the publisher, frames after each stream's
handler, health from the app's own metrics); ``server.create_app`` is the FastAPI app reading it;
``runtime`` wires both into `edge_app.app` and runs uvicorn in a background thread.
"""
